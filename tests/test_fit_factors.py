"""Fits with several grouping factors (issue 16) against lme4 1.1-31 on the same data.

lme4_factors.json holds lme4's fits (tests/data/lme4_factors.R made it, with penicillin.csv, which is
lme4::Penicillin, and three_level.csv, students in classes in schools): crossed factors, nested
intercepts (``school/class``), a school slope beside nested classes, and ``||`` beside an
interaction factor; REML, and ML once. Tolerances of issue 16: fixed effects 1e-4 relative,
their SEs and the variance components (SDs, correlations, sigma) 1e-3 relative, the REML
criterion (deviance under ML) 1e-4 absolute and never above lme4's; conditional modes 1e-3
absolute with their conditional SDs 1e-3 relative; npar, groups per factor and the singular flag equal.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.formula import level_label
from mlmi.fit.lmer import fit_mixed

DATA = Path(__file__).parent / "data"
LME4 = json.loads((DATA / "lme4_factors.json").read_text())
CASES = [case for case in LME4 if case != "versions"]


@pytest.fixture(scope="module")
def fits():
    return {case: fit_mixed(pd.read_csv(DATA / LME4[case]["data"]), LME4[case]["formula"], reml=LME4[case]["reml"])
            for case in CASES}


def varcorr_sdcor(fit: dict) -> list[float]:
    """The fit's SDs and correlations in the rows of lme4's as.data.frame(VarCorr()): per term, SDs then
    correlations, terms in lme4's order; sigma last."""
    terms = fit["random_effects"] if isinstance(fit["random_effects"], list) else [fit["random_effects"]]
    return [value for term in terms for value in [*term["sd"].values(), *term["cor"].values()]] + [fit["sigma"]]


@pytest.mark.parametrize("case", CASES)
def test_fixed_effects_and_criteria_are_lme4s(fits, case):
    fit, lme4 = fits[case], LME4[case]
    assert [row["term"] for row in fit["fixed_effects"]] == list(lme4["fixef"])
    np.testing.assert_allclose([row["estimate"] for row in fit["fixed_effects"]], list(lme4["fixef"].values()),
                               rtol=1e-4)
    np.testing.assert_allclose([row["std_error"] for row in fit["fixed_effects"]], list(lme4["se"].values()),
                               rtol=1e-3)
    criterion = fit["reml_criterion"] if lme4["reml"] else fit["deviance"]
    reference = lme4["reml_criterion"] if lme4["reml"] else lme4["deviance"]
    assert criterion == pytest.approx(reference, abs=1e-4) and criterion <= reference + 1e-9
    expected = (lme4["loglik"], lme4["aic"], lme4["bic"])
    assert (fit["loglik"], fit["aic"], fit["bic"]) == pytest.approx(expected, abs=1e-4)
    assert fit["npar"] == lme4["npar"] and fit["convergence"]["converged"]
    assert fit["convergence"]["singular"] == lme4["singular"]


@pytest.mark.parametrize("case", CASES)
def test_variance_components_are_lme4s_varcorr(fits, case):
    np.testing.assert_allclose(varcorr_sdcor(fits[case]), LME4[case]["varcorr"]["sdcor"], rtol=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_groups_per_factor_and_number_of_factors_are_lme4s(fits, case):
    assert fits[case]["n_groups"] == LME4[case]["ngrps"]
    assert fits[case]["n_levels"] == len(LME4[case]["ngrps"])


@pytest.mark.parametrize("case", CASES)
def test_conditional_modes_and_sds_are_lme4s_ranef(fits, case):
    ours = {}
    for term in fits[case]["ranef"]:
        for level, modes, cond_var in zip(term["levels"], term["modes"], term["cond_var"]):
            for j, name in enumerate(term["terms"]):
                ours[(term["group"], level_label(level), name)] = (modes[j], np.sqrt(cond_var[j][j]))
    ranef = LME4[case]["ranef"]
    keys = list(zip(ranef["grpvar"], ranef["grp"], ranef["term"]))
    assert sorted(ours) == sorted(keys)
    np.testing.assert_allclose([ours[key][0] for key in keys], ranef["condval"], atol=1e-3)
    np.testing.assert_allclose([ours[key][1] for key in keys], ranef["condsd"], rtol=1e-3)


def test_one_term_keeps_the_single_factor_record():
    fit = fit_mixed(pd.read_csv(DATA / "small.csv"), "mathach ~ ses + (1 + ses | schid)")
    assert isinstance(fit["random_effects"], dict) and isinstance(fit["ranef"], dict)
    assert fit["n_levels"] == 1 and list(fit["n_groups"]) == ["schid"]


def test_too_many_effects_outside_the_largest_term_are_refused_by_name(monkeypatch):
    from mlmi.fit import deviance_factors

    monkeypatch.setattr(deviance_factors, "DENSE_LIMIT", 5)
    with pytest.raises(ValueError, match=r"^6 random effects outside the largest term \(24 effects\): more than the 5"):
        fit_mixed(pd.read_csv(DATA / "penicillin.csv"), LME4["penicillin"]["formula"])
