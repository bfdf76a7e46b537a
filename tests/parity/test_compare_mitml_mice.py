"""Parity of pooled model comparisons (issue 17, item 2): D2 and D3 with mitml 0.4-4 and mice 3.15, on frozen R numbers.

``compare_tests.R`` (beside this file) fitted, by ML, the analysis model and nested comparison models to the
imputed data sets of ``test_d1_mitml_mice.py`` (``tests/data/pool_tests_*``: two of lme4_mice.R's cases and one
with a three-level factor) and froze ``tests/data/compare_tests_reference.json``: ``mitml::testModels(method =
"D3")``, ``testModels(method = "D2", use = "likelihood")``, ``mice::D2(use = "likelihood")``, each imputation's
log-likelihood at the pooled estimates (mitml's, from lme4's ``devfun2``), and ``mice::D3``, which is another
statistic for lmer fits (it fixes only the fixed effects, and counts only their parameters) and is not matched.
Here the same data sets are fitted by ``mlmi.fit.lmer.fit_mixed`` and compared by ``mlmi.pool.compare``. D2's
statistic, df1, df2, p and riv must agree with mitml and mice within 1e-4 relative, D3's with mitml within 1e-3
(issue 17). No R is needed to run it; ``Rscript compare_tests.R ../data`` remakes the reference.

    python -m pytest tests/parity/test_compare_mitml_mice.py     # about 30 s on 2 busy cores: 75 fits
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.lmer import fit_mixed, loglik_at_parameters
from mlmi.fit.record import FitRecord
from mlmi.pool.compare import PooledParameters, comparison_tests

from test_d1_mitml_mice import imputed_data_sets

DATA = Path(__file__).parents[1] / "data"
REFERENCE = json.loads((DATA / "compare_tests_reference.json").read_text())
CASES = {case["name"]: case for case in REFERENCE["cases"]}
RTOL = {"D2": 1e-4, "D3": 1e-3}
PAIRS = {"statistic": "statistic", "df": "df1", "df_residual": "df2", "p_value": "p", "riv": "riv"}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """One case: R's reference, the imputed data sets, and mlmi's ML fits of the analysis and comparison models."""
    ref = CASES[request.param]
    sets = imputed_data_sets(ref["name"], ref["m"])

    def fits(formula, reml=False):
        return [FitRecord.from_fit(fit_mixed(data, formula, reml=reml, label=str(k)))
                for k, data in enumerate(sets, start=1)]

    compare = {c["name"]: fits(c["compare"]) for c in ref["comparisons"]}
    return ref, sets, fits(ref["formula"]), compare, fits


def check(row, theirs: dict, rtol: float, what: str, worst: dict | None = None) -> list[str]:
    """The mismatches of one of mlmi's rows with one of R's results (and the worst differences, on record)."""
    failures = []
    for ours, name in PAIRS.items():
        mine, reference = row[ours], theirs[name]
        if not np.isclose(mine, reference, rtol=rtol, atol=0):
            failures.append(f"{what} {ours}: mlmi {mine!r}, R {reference!r} "
                            f"(rel {abs(mine - reference) / abs(reference):.2g})")
        if worst is not None:
            entry = worst.setdefault((what.split(" (")[0], ours), [0.0, 0.0, f"{rtol:g} relative"])
            entry[0] = max(entry[0], abs(mine - reference))
            entry[1] = max(entry[1], abs(mine - reference) / abs(reference))
    return failures


def test_loglik_at_pooled_estimates_is_lme4s(case):
    """Each imputation's log-likelihood at its own ML estimates and at the pooled ones, against lme4 (the latter
    through mitml's devfun2 evaluation): the heart of D3."""
    ref, sets, full, compare, _ = case
    formulas = {"full": (ref["formula"], full)}
    formulas.update({c["name"]: (c["compare"], compare[c["name"]]) for c in ref["comparisons"]})
    for comparison in ref["comparisons"]:
        loglik = comparison["loglik"]
        for key, (formula, fits) in (("full", formulas["full"]), ("compare", formulas[comparison["name"]])):
            pooled = PooledParameters.of(fits)
            ours = [loglik_at_parameters(data, formula, pooled) for data in sets]
            assert np.allclose([fit.raw["loglik"] for fit in fits], loglik[key], rtol=1e-8, atol=0), key
            assert np.allclose(ours, loglik[f"{key}_pooled"], rtol=1e-7, atol=0), key
            assert fits[0].raw["npar"] == loglik[f"npar_{key}"]


def test_d2_and_d3_match_mitml_and_mice(case, worst_differences):
    ref, sets, full, compare, _ = case
    comparisons = [{"name": c["name"], "formula": c["compare"], "methods": ["D2", "D3"]} for c in ref["comparisons"]]
    rows = comparison_tests(full, comparisons, compare, sets, ref["formula"], loglik_at_parameters).set_index(
        ["test", "method"])
    failures = []
    for comparison in ref["comparisons"]:
        name = comparison["name"]
        d2_row, d3_row = rows.loc[(name, "D2")], rows.loc[(name, "D3")]
        failures += check(d2_row, comparison["mitml_d2"], RTOL["D2"], f"D2 {ref['name']} ({name}, mitml)",
                          worst_differences)
        failures += check(d2_row, comparison["mice_d2"], RTOL["D2"], f"D2 {ref['name']} ({name}, mice::D2)")
        failures += check(d3_row, comparison["mitml_d3"], RTOL["D3"], f"D3 {ref['name']} ({name}, mitml)",
                          worst_differences)
        assert d2_row["hypothesis"] == comparison["compare"] and pd.isna(d2_row["dfcom"])
    assert not failures, "\n".join(failures)
    assert (rows["m"] == ref["m"]).all()


def test_d2_of_reml_fits_that_differ_in_random_terms_only(case, worst_differences):
    """REML likelihoods compare models with the same fixed part: D2 pools their LR chi-squares (mitml's .D2 on
    lme4's REML logLiks; mitml's testModels itself would refit with ML)."""
    ref, sets, _, _, fits = case
    for comparison in [c for c in ref["comparisons"] if "reml_d2" in c]:
        full, nested = fits(ref["formula"], reml=True), fits(comparison["compare"], reml=True)
        assert np.allclose([fit.raw["loglik"] for fit in full], comparison["loglik"]["full_reml"], rtol=1e-8, atol=0)
        rows = comparison_tests(full, [{"name": "reml", "formula": comparison["compare"], "methods": ["D2"]}],
                                {"reml": nested}, None, ref["formula"])
        failures = check(rows.iloc[0], comparison["reml_d2"], RTOL["D2"], f"D2 REML {ref['name']}",
                         worst_differences)
        assert not failures, "\n".join(failures)

