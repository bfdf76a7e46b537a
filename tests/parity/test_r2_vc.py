"""Parity of multilevel R² (issue 17, item 3) with mitml 0.4-4 and performance 0.10.2, and of each fit's Wald
covariance of its variance parameters (item 4) with a numerical Hessian of lme4's own deviance, on frozen R numbers.

``r2_vc.R`` (beside this file) made ``tests/data/r2_vc_reference.json`` from the imputed data sets of
pool_tests.R's three cases and from ``tests/data/small.csv`` (REML and ML). Here the same data sets are fitted by
``mlmi.fit.lmer.fit_mixed`` and described by ``mlmi.fit.r2.fit_r2``; the pooled R² is ``mlmi.pool.r2.pool_r2``.

- R² within 1e-4 relative (issue 17) of ``mitml::multilevelR2`` per fit (RB1, RB2, SB, MVP = r2_marginal) and of
  its mean over the fits. The conditional R² is not mitml's; it is checked against performance's
  ``r2_nakagawa``: equal where the model has a random intercept only, and with random slopes through the identity
  below (performance takes the slope variance's moments with divisor n, mitml with n - 1, so their totals differ
  by O(1/n); r2_conditional keeps mitml's total, as r2_marginal = MVP does).
- The covariance of (log SDs, atanh correlations, log sigma) within 1e-4 relative, every element, of R's
  ``2 solve(numDeriv::hessian(...))`` of the unprofiled deviance built from lme4's pieces (and, for ML fits, of
  lme4's devfun2 route, which R agrees with to ~1e-7); the log-scale estimates within 1e-5 absolute.

    python -m pytest tests/parity/test_r2_vc.py     # about 40 s on 2 busy cores: 37 fits and their null models
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_d1_mitml_mice import imputed_data_sets

from mlmi.fit.lmer import fit_mixed
from mlmi.fit.r2 import MEASURES, fit_r2
from mlmi.fit.record import FitRecord
from mlmi.pool.r2 import pool_r2

DATA = Path(__file__).parents[1] / "data"
REFERENCE = json.loads((DATA / "r2_vc_reference.json").read_text())
CASES = {case["name"]: case for case in REFERENCE["cases"]}
RTOL = 1e-4
#: mitml's names of the measures mlmi shares with it.
MITML = {"r2_marginal": "MVP", "r2_rb1": "RB1", "r2_rb2": "RB2", "r2_sb": "SB"}


def data_sets(name: str, m: int) -> list[pd.DataFrame]:
    """A case's data sets: pool_tests.R's imputed ones, or small.csv alone."""
    return [pd.read_csv(DATA / "small.csv")] if name.startswith("small") else imputed_data_sets(name, m)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """One case: R's reference and mlmi's fit records, each with its R²."""
    ref = CASES[request.param]
    fits = []
    for k, data in enumerate(data_sets(ref["name"], ref["m"]), start=1):
        made = fit_mixed(data, ref["formula"], reml=ref["reml"], label=str(k))
        fits.append(FitRecord.from_fit({**made, "r2": fit_r2(data, FitRecord.from_fit(made))}))
    return ref, fits


def relative(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / abs(theirs)


def note(worst: dict, name: str, quantity: str, ours, theirs) -> None:
    """Keep the worst difference for the parity table at the end of the run."""
    ours, theirs = np.ravel(ours), np.ravel(theirs)
    entry = worst.setdefault((name, quantity), [0.0, 0.0, f"{RTOL:g} relative"])
    entry[0] = max(entry[0], float(np.max(np.abs(ours - theirs))))
    entry[1] = max(entry[1], float(np.max(np.abs(ours - theirs) / np.abs(theirs))))


def test_r2_matches_mitml_per_fit_and_pooled(case, worst_differences):
    ref, fits = case
    failures = []
    for k, (fit, theirs) in enumerate(zip(fits, ref["fits"]), start=1):
        for ours_name, mitml_name in MITML.items():
            note(worst_differences, f"R2 {ref['name']}", ours_name, fit.r2[ours_name], theirs["r2"][mitml_name])
            if relative(fit.r2[ours_name], theirs["r2"][mitml_name]) > RTOL:
                failures.append(f"fit {k} {ours_name}: mlmi {fit.r2[ours_name]!r}, "
                                f"mitml {theirs['r2'][mitml_name]!r}")
    pooled = pool_r2(fits).set_index("imputation").loc["pooled"]
    for ours_name, mitml_name in MITML.items():
        if relative(pooled[ours_name], ref["pooled_r2"][mitml_name]) > RTOL:
            failures.append(f"pooled {ours_name}: mlmi {pooled[ours_name]!r}, mitml {ref['pooled_r2'][mitml_name]!r}")
    assert not failures, "\n".join(failures)


def test_conditional_r2_matches_performance(case, worst_differences):
    """performance's marginal pm and conditional pc share its total; mitml's MVP shares mlmi's. With var_f and
    sigma2 common to both, sigma2 / var_f = (1 - pc) / pm, so mlmi's conditional is 1 - MVP (1 - pc) / pm."""
    ref, fits = case
    for fit, theirs in zip(fits, ref["fits"]):
        r2 = theirs["r2"]
        expected = 1 - r2["MVP"] * (1 - r2["conditional"]) / r2["marginal"]
        note(worst_differences, f"R2 {ref['name']}", "r2_conditional", fit.r2["r2_conditional"], expected)
        assert relative(fit.r2["r2_conditional"], expected) < RTOL
        if len(fit.variance_components[0].terms) == 1:          # no slope: the same total, the same numbers
            assert relative(fit.r2["r2_conditional"], r2["conditional"]) < RTOL
            assert relative(fit.r2["r2_marginal"], r2["marginal"]) < RTOL


def test_wald_covariance_matches_a_numerical_hessian_of_lme4s_deviance(case, worst_differences):
    ref, fits = case
    for fit, theirs in zip(fits, ref["fits"]):
        ours = fit.variance_parameters
        assert ours.terms == theirs["vc"]["names"] and ours.problem is None
        np.testing.assert_allclose(ours.estimate, theirs["vc"]["phi"], rtol=0, atol=1e-5)
        for key in ("vcov", "vcov_devfun2"):
            if key in theirs["vc"]:
                note(worst_differences, f"VC {ref['name']}", key, ours.vcov, theirs["vc"][key])
                np.testing.assert_allclose(ours.vcov, theirs["vc"][key], rtol=RTOL, atol=0)


def test_the_pool_stage_writes_r2_and_variance_components(tmp_path):
    """pooled/r2.csv and pooled/variance_components.csv from the fit stage's records of the factor case."""
    from mlmi.pool.variance_components import VC_COLUMNS
    from mlmi.report.results import pooled_tables
    from mlmi.run import io
    from mlmi.run import stages

    ref = CASES["factor3_100x12_m5"]
    paths = []
    for k, data in enumerate(data_sets(ref["name"], ref["m"]), start=1):
        io.write_parquet(data, tmp_path / f"imp_{k}.parquet")
        paths.append(tmp_path / f"imp_{k}.json")
        stages.fit(tmp_path / f"imp_{k}.parquet", paths[-1], model={"formula": ref["formula"], "reml": ref["reml"]},
                   label=str(k))
    outputs = pooled_tables(tmp_path)
    stages.pool_fits(paths, paths[0], outputs)
    r2 = pd.read_csv(outputs["r2"], dtype={"imputation": str})
    assert list(r2.columns) == ["imputation", *MEASURES]
    assert list(r2["imputation"]) == [*map(str, range(1, ref["m"] + 1)), "pooled"]
    pooled = r2.set_index("imputation").loc["pooled"]
    for ours_name, mitml_name in MITML.items():
        assert relative(pooled[ours_name], ref["pooled_r2"][mitml_name]) < RTOL
    vc = pd.read_csv(outputs["variance_components"])
    assert list(vc.columns) == VC_COLUMNS
    assert list(vc["term"]) == ["sd__(Intercept)", "sd__Observation"]
    assert list(vc["group"]) == ["g", "Residual"]
    phis = np.array([fit["vc"]["phi"] for fit in ref["fits"]])
    variances = np.array([np.diag(fit["vc"]["vcov"]) for fit in ref["fits"]])
    qbar, ubar, b = phis.mean(axis=0), variances.mean(axis=0), phis.var(axis=0, ddof=1)
    t = ubar + (1 + 1 / ref["m"]) * b
    df = (ref["m"] - 1) * (t / ((1 + 1 / ref["m"]) * b)) ** 2               # Rubin's df, dfcom infinite
    from scipy import stats

    half = stats.t.ppf(0.975, df) * np.sqrt(t)
    np.testing.assert_allclose(vc["estimate"], np.exp(qbar), rtol=1e-5)
    np.testing.assert_allclose(vc["conf_low"], np.exp(qbar - half), rtol=1e-4)
    np.testing.assert_allclose(vc["conf_high"], np.exp(qbar + half), rtol=1e-4)
    np.testing.assert_allclose(vc["df"], df, rtol=1e-3)
