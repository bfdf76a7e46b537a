"""One fit against lme4's own numbers and against direct matrix computations."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from mlmi.fit.lmer import complete_cases, fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.pool.summarize import model_info

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "small_lme4.json").read_text())   # from lme4_reference.R
LME4_CHECKS = json.loads((DATA / "lme4_checks.json").read_text())  # from lme4_checks.R


@pytest.fixture(scope="module")
def small():
    return pd.read_csv(DATA / "small.csv")


CASES = ["full", "intercept", "slope", "full_ml", "singular"]


@pytest.fixture(scope="module")
def fits():
    return {case: fit_mixed(pd.read_csv(DATA / REFERENCE[case]["data"]), REFERENCE[case]["formula"],
                            reml=REFERENCE[case]["reml"]) for case in CASES}


def column(fit, key):
    return np.array([row[key] for row in fit["fixed_effects"]])


@pytest.mark.parametrize("case", CASES)
def test_matches_lme4(fits, case):
    ref, fit = REFERENCE[case], fits[case]
    assert [row["term"] for row in fit["fixed_effects"]] == list(ref["fixef"])
    # Tolerances of issue 4: fixed effects and SEs 1e-4 relative; SDs, cor, sigma 1e-3 relative;
    # criteria 1e-3 absolute; conditional modes 1e-3 absolute.
    np.testing.assert_allclose(column(fit, "estimate"), list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(column(fit, "std_error"), list(ref["se"].values()), rtol=1e-4)
    np.testing.assert_allclose(fit["vcov"]["matrix"], ref["vcov"], rtol=1e-3, atol=1e-6)
    re = fit["random_effects"]
    np.testing.assert_allclose([*re["sd"].values(), *re["cor"].values(), fit["sigma"]], ref["sdcor"], rtol=1e-3)
    assert fit["loglik"] == pytest.approx(ref["loglik"], abs=1e-3)
    assert fit["aic"] == pytest.approx(ref["aic"], abs=1e-3)
    assert fit["bic"] == pytest.approx(ref["bic"], abs=1e-3)
    assert fit["npar"] == ref["npar"]
    if ref["reml"]:
        assert fit["reml_criterion"] == pytest.approx(ref["reml_criterion"], abs=1e-3)
    else:
        assert fit["reml_criterion"] is None and fit["deviance"] == pytest.approx(-2 * ref["loglik"], abs=1e-3)
    modes = np.array(fit["ranef"]["modes"])
    np.testing.assert_allclose(modes, np.array(ref["modes"]).reshape(modes.shape), atol=1e-3)
    cond_var = np.array(fit["ranef"]["cond_var"])
    np.testing.assert_allclose(cond_var, np.array(ref["cond_var"]).reshape(cond_var.shape), atol=1e-3)
    assert fit["convergence"]["converged"] and fit["convergence"]["singular"] == ref["singular"]
    assert fit["convergence"]["max_abs_gradient"] < 2e-3


def test_lme4_vcov_equals_dense_gls_inverse(small, fits):
    """sigma^2 (X' V^-1 X)^-1 built from the whole n x n V, not per group (design §5.1)."""
    fit = fits["full"]
    x = np.column_stack([np.ones(len(small)), small[["minority", "female", "ses", "meanses"]]])
    z = np.column_stack([np.ones(len(small)), small["ses"]])
    same_group = small["schid"].to_numpy()[:, None] == small["schid"].to_numpy()[None, :]
    v = (z @ np.array(fit["random_effects"]["cov"]) @ z.T) * same_group + fit["sigma"] ** 2 * np.eye(len(small))
    direct = np.linalg.inv(x.T @ np.linalg.solve(v, x))
    np.testing.assert_allclose(fit["vcov"]["matrix"], direct, rtol=1e-9)
    gls_beta = direct @ x.T @ np.linalg.solve(v, small["mathach"].to_numpy())
    np.testing.assert_allclose(column(fit, "estimate"), gls_beta, rtol=1e-6)


def test_conditional_modes_agree_with_statsmodels(small, fits):
    fit = fits["full"]
    x = sm.add_constant(small[["minority", "female", "ses", "meanses"]])
    model = sm.MixedLM(small["mathach"], x, small["schid"], exog_re=sm.add_constant(small[["ses"]]))
    params = model.fit(reml=True, method="bfgs", gtol=1e-8)
    expected = np.array([params.random_effects[g].to_numpy() for g in sorted(params.random_effects)])
    np.testing.assert_allclose(fit["ranef"]["modes"], expected, atol=1e-4)
    assert fit["ranef"]["levels"] == sorted(small["schid"].unique().tolist())


def test_criteria_follow_lme4_definitions(fits):
    fit = fits["full"]
    assert fit["npar"] == 5 + 3 + 1
    assert fit["reml_criterion"] == pytest.approx(-2 * fit["loglik"], rel=1e-15)
    assert fit["aic"] == pytest.approx(-2 * fit["loglik"] + 2 * 9, rel=1e-15)
    assert fit["bic"] == pytest.approx(-2 * fit["loglik"] + np.log(fit["n_obs"]) * 9, rel=1e-15)
    assert fit["dfcom"] == fit["n_obs"] - 9
    assert json.loads(json.dumps(fit)) == fit          # JSON-ready, floats round-trip


def test_singular_fit_warns_like_lme4_and_says_what_to_do(fits):
    assert fits["singular"]["convergence"]["warnings"] == [
        "boundary (singular) fit: see help('isSingular'): a random-effect variance is at zero or a correlation at "
        "+-1; the random-effects structure may be too complex for the data; consider dropping the random slope or "
        "its correlation"]
    assert fits["full"]["convergence"]["warnings"] == []


def test_model_info_holds_the_fits_own_warnings(fits):
    """model_info's flags and warnings column are the kept fits' verdicts, one row per fit."""
    convergence = fits["singular"]["convergence"]
    assert convergence["converged"] and fits["singular"]["convergence"]["attempts"][0]["start"] == "lme4 default"
    info = model_info({"1": FitRecord.from_fit(fits["singular"]), "2": FitRecord.from_fit(fits["full"])})
    assert info["converged"].tolist() == [True, True] and info["singular"].tolist() == [True, False]
    assert info["warnings"].tolist() == ["; ".join(convergence["warnings"]), ""]


def test_the_optimizers_own_words_are_not_the_verdict():
    """On abnormal_lnsrch.csv BOBYQA stops on its tolerance (NLOPT_FTOL_REACHED) at lme4's optimum (lme4's bobyqa
    with rhoend = 1e-10, whose checkConv passes: theta within 1e-6, REML criterion within 1e-6): the optimizer's
    message stays in the attempt, and the fit's message is lme4's verdict."""
    ref = LME4_CHECKS["abnormal"]
    fit = fit_mixed(pd.read_csv(DATA / ref["data"]), ref["formula"])
    convergence = fit["convergence"]
    kept = convergence["attempts"][convergence["kept"] - 1]
    assert kept["optimizer"] == "BOBYQA" and kept["message"].startswith("NLOPT_") and ref["conv_messages"] == []
    assert convergence["converged"] and convergence["message"].startswith("converged: max|grad| = ")
    assert convergence["warnings"] == []
    np.testing.assert_allclose(fit["theta"], ref["theta"], atol=1e-6)
    assert fit["reml_criterion"] == pytest.approx(ref["reml_criterion"], abs=1e-6)
    np.testing.assert_allclose(column(fit, "estimate"), list(ref["fixef"].values()), rtol=1e-5)


def test_no_group_variance_is_flagged_singular():
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"g": np.repeat(np.arange(20), 10), "x": rng.normal(size=200)})
    data["y"] = data["x"] + rng.normal(size=200)             # no group effect at all
    fit = fit_mixed(data, "y ~ x + (1 + x | g)")
    assert fit["convergence"]["singular"]
    assert any("singular" in w for w in fit["convergence"]["warnings"])


def test_complete_cases_and_input_errors(small):
    holes = small.copy()
    holes.loc[[0, 5], "ses"] = np.nan
    holes["unused"] = np.nan
    kept = complete_cases(holes, "mathach ~ ses + (1 | schid)")
    assert len(kept) == len(small) - 2                       # the unused column does not count
    with pytest.raises(ValueError, match=r"missing values in model variables \['ses'\]"):
        fit_mixed(holes, "mathach ~ ses + (1 | schid)")
    with pytest.raises(ValueError, match=r"grouping factors must have > 1 sampled level \('schid' has 1\)"):
        fit_mixed(small.assign(schid=1), "mathach ~ ses + (1 | schid)")


@pytest.mark.parametrize("reml", [True, False])
def test_lme4_deviance_equals_statsmodels_likelihood(small, reml):
    """mlmi.fit.deviance at an arbitrary theta against statsmodels' own profiled likelihood: the full solution's
    deviance and the optimizer's criterion (from the Cholesky factor alone)."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    from mlmi.fit.deviance import CrossProducts, criterion, lambda_of, solve
    from mlmi.fit.formula import parse_formula
    from mlmi.fit.lmer import Design, _blocks

    design = Design(small, parse_formula(REFERENCE["full"]["formula"]))
    theta = np.array([0.3, -0.1, 0.2])
    cp = CrossProducts.of(design.y, design.X, design.Z, _blocks(design))
    ours = solve(theta, cp, reml)
    model = sm.MixedLM(design.y, design.X, design.groups, exog_re=design.Z)
    model.reml, model.cov_pen, model.fe_pen = reml, None, None   # what MixedLM.fit sets
    lam = lambda_of(theta, 2)
    params = MixedLMParams.from_components(fe_params=np.zeros(5), cov_re=lam @ lam.T)
    assert ours.deviance == pytest.approx(-2 * model.loglike(params, profile_fe=True), rel=1e-10)
    assert criterion(theta, cp, reml) == pytest.approx(-2 * model.loglike(params, profile_fe=True), rel=1e-10)


def test_a_rescue_start_that_cannot_be_made_keeps_its_warnings_to_itself(monkeypatch):
    """A start that gives no theta (statsmodels failing) is listed under skipped_starts with its warnings; it is not
    an attempt, and no attempt carries its words (they used to be appended to the attempt before it)."""
    from mlmi.fit import lmer as fit_module

    failing = ("L-BFGS-B", "statsmodels MixedLM", lambda theta, design, objective: (None, ["statsmodels: boom"]))
    monkeypatch.setattr(fit_module, "RESCUES", [failing, fit_module.RESCUES[0]])
    monkeypatch.setattr(fit_module, "_passes", lambda attempt: False)      # every rescue runs
    record = fit_mixed(pd.read_csv(DATA / "small.csv"), "mathach ~ ses + (1 + ses | schid)")
    convergence = record["convergence"]
    assert convergence["skipped_starts"] == [{"start": "statsmodels MixedLM", "warnings": ["statsmodels: boom"]}]
    assert all("statsmodels: boom" not in attempt["warnings"] for attempt in convergence["attempts"])
    assert [attempt["start"] for attempt in convergence["attempts"]][-1] == "optimum of attempt 1"


def test_a_fit_on_its_bound_imports_only_what_it_uses():
    """A fit of the usual shape (plain columns, one random term) whose slope variance ends on its bound 0, so that
    it restarts off the bound, loads neither formulaic, statsmodels nor scipy's optimize, sparse and linalg
    (together about 0.8 s, more than the fit): each fit job of a run pays its imports."""
    code = """
import sys, numpy as np, pandas as pd
from mlmi.fit.lmer import fit_mixed
rng = np.random.default_rng(1)
g = np.repeat(np.arange(30), 10); x = rng.normal(size=300)
y = 1 + 0.5 * x + rng.normal(size=30)[g] + rng.normal(size=300)
fit = fit_mixed(pd.DataFrame({"y": y, "x": x, "g": g}), "y ~ x + (1 + x | g)")
print([(a["start"], a["optimizer"]) for a in fit["convergence"]["attempts"]], fit["convergence"]["converged"])
print(" ".join(name for name in ("formulaic", "statsmodels", "scipy.optimize", "scipy.sparse", "scipy.linalg")
               if name in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    attempts, loaded = done.stdout.splitlines()
    assert attempts == "[('lme4 default', 'BOBYQA'), ('off the bound in theta[2]', 'L-BFGS')] True"
    assert loaded == ""

