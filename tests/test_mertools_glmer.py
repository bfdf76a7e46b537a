"""pooling.mertools_legacy for glmer fits: merTools' modelFixedEff on a glmerModList, frozen by
tests/data/mertools_glmer_reference.R (merTools 0.5.2, lme4 1.1-31) on mice's five imputations of binary_slope.csv.

merTools has one modelFixedEff for every merModList: it reads each fit with broom.mixed's tidy, which for a
glmerMod gives glmer's estimates and vcov() standard errors (z statistics, not t), and combines them with the
same arithmetic as for lmer fits (mlmi.pool.mertools), df included: its classical Rubin df on its own values, with no
complete-data df (unlike mice, whose dfcom for glmer is n - npar).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.glmm import fit_glmm
from mlmi.fit.record import FitRecord
from mlmi.pool.mertools import MERTOOLS_VERSIONS, mertools_fixed_effects
from test_glmm_config import pool_records

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "mertools_glmer.json").read_text())
COLUMNS = ["estimate", "std_error", "statistic", "df"]


def reference_table() -> pd.DataFrame:
    return pd.DataFrame(REF["model_fixed_eff"]).rename(columns={"std.error": "std_error"})


def record(fit: dict) -> FitRecord:
    """A fit record holding what the combination reads, from R's per-fit (tidy) numbers."""
    return FitRecord.from_fit({"fixed_effects": [{"term": t, "estimate": q, "std_error": se}
                                                 for t, q, se in zip(fit["term"], fit["estimate"], fit["std_error"])]})


@pytest.fixture(scope="module")
def our_fits():
    return [FitRecord.from_fit(fit_glmm(pd.read_csv(DATA / f"glmm_mice_imp_{k}.csv"), REF["formula"], "binomial"))
            for k in range(1, 6)]


def test_the_reference_is_what_this_module_reproduces():
    assert REF["versions"]["merTools"] in MERTOOLS_VERSIONS and REF["versions"]["lme4"] == "1.1.31"
    assert REF["warnings"] == [] and all(fit["messages"] == [] for fit in REF["per_fit"])   # glmer converged


def test_arithmetic_matches_mertools_on_glmer_s_own_fits():
    # glmer's per-fit estimates and SEs (as tidy gives them) in: only the combination is compared, so the differences
    # left are floating point and the JSON's 15 significant digits. Tolerance 1e-10 relative on every column; the
    # intercept's df (4.0e5: its between-imputation variance is tiny beside its SE) is compared in the same way.
    ours = mertools_fixed_effects([record(fit) for fit in REF["per_fit"]])
    theirs = reference_table()
    assert list(ours["term"]) == list(theirs["term"])
    np.testing.assert_allclose(ours[COLUMNS].to_numpy(), theirs[COLUMNS].to_numpy(), rtol=1e-10)


def test_end_to_end_matches_mertools(our_fits):
    # Our glmer fits of the same five data sets, combined as merTools combines glmer's. The fits differ from glmer's
    # where glmer stops (seen per fit: estimates up to 2.0e-5 relative, SEs 4.8e-6, deviances within 1e-7;
    # tests/test_glmm.py bounds such differences). Tolerances, from what those allow:
    # - estimate, std_error, statistic: 2e-5 relative (seen: up to 6.6e-6);
    # - df: 2e-3 relative (seen: up to 3.3e-4, z's). df = 4 (1 + within_var / ((6/5) between_var))^2 goes with the
    #   inverse square of between_var, the variance of estimates only ~.05 apart, so differences of ~1e-5 in the
    #   estimates move it by ~1e-4 relative.
    for fit, ref in zip(our_fits, REF["per_fit"]):
        assert fit.terms == ref["term"]
        assert fit.deviance == pytest.approx(ref["deviance"], abs=1e-6)
    ours = mertools_fixed_effects(our_fits)
    theirs = reference_table()
    assert list(ours["term"]) == list(theirs["term"])
    np.testing.assert_allclose(ours[COLUMNS[:3]].to_numpy(), theirs[COLUMNS[:3]].to_numpy(), rtol=2e-5)
    np.testing.assert_allclose(ours["df"].to_numpy(), theirs["df"].to_numpy(), rtol=2e-3)


def test_the_pool_stage_writes_mertools_table_for_glmer_fits(tmp_path, our_fits):
    """pooling.mertools_legacy: the pool stage writes pooled/mertools_fixed_effects.csv from GLMM fit records."""
    outputs = pool_records(tmp_path / "run", our_fits, mertools_legacy=True)
    written = pd.read_csv(outputs["mertools"])
    np.testing.assert_allclose(written[COLUMNS].to_numpy(), mertools_fixed_effects(our_fits)[COLUMNS].to_numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(written[COLUMNS[:3]].to_numpy(), reference_table()[COLUMNS[:3]].to_numpy(), rtol=2e-5)
