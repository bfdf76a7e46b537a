"""Under MCAR, multiple imputation's 95% intervals cover the truth and listwise deletion is
unbiased (both hold in theory): a small but sufficient study, R = 100 replications.

Each replication runs the library functions the workflow's rules call, in one process per
core, with seeds from (master seed, "coverage", replication) as a study run's are derived.
"""
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

from mlmi.data.ampute import ampute_from_config
from mlmi.data.simulate import simulate_hsb
from mlmi.fit.lmer import complete_cases, fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.impute.miceforest import impute_once
from mlmi.pool.rubin import pool
from mlmi.pool.summarize import random_effect_stats
from mlmi.pool.variance_components import pool_variance_components
from mlmi.run.plan import scenario_key
from mlmi.run.seeds import int_seed_for, rng_for
from mlmi.run.study import replication_estimates, summarize_study

R, M, SEED = 100, 3, 20261124
FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"
MISSINGNESS = {"mechanism": "MCAR", "prob": {"minority": 0.05, "female": 0.05, "ses": 0.05, "size": 0.05}}


def replication(r: int) -> pd.DataFrame:
    """One replication: simulate, ampute, impute M times, fit, pool; estimates by method."""
    prefix = (scenario_key("coverage"), r)
    complete, truth = simulate_hsb({"n_schools": 30}, rng_for(SEED, "simulate", prefix=prefix))
    missing = ampute_from_config(complete, MISSINGNESS, rng_for(SEED, "ampute", prefix=prefix))
    def fitted(data):
        return FitRecord.from_fit(fit_mixed(data, FORMULA))

    fits = [fitted(impute_once(missing, seed=int_seed_for(SEED, "impute", k, prefix), iterations=3,
                               exclude=["schid", "meanses"], categorical=["minority", "female"])[0])
            for k in range(1, M + 1)]
    estimates = replication_estimates(pooled=pool(fits), random_effects=random_effect_stats(fits),
                                      variance_components=pool_variance_components(fits),
                                      listwise=fitted(complete_cases(missing, FORMULA)), complete=fitted(complete))
    return estimates.assign(scenario="coverage", replication=r), truth


@pytest.fixture(scope="module")
def summary():
    # spawn, not fork: a fork after LightGBM's OpenMP threads have started (earlier tests) can hang the child.
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as workers:
        results = list(workers.map(replication, range(1, R + 1)))
    estimates = pd.concat([estimates for estimates, _ in results], ignore_index=True)
    return summarize_study(estimates, {"coverage": results[0][1]}).set_index(["method", "term"])


FIXED = ["(Intercept)", "minority", "female", "ses", "meanses"]


@pytest.mark.parametrize("term", FIXED)
def test_pooled_intervals_cover_the_truth(summary, term):
    row = summary.loc[("pooled", term)]
    # Acceptance: 95% +- 3 Monte Carlo SEs, the MCSE at nominal coverage: sqrt(.95 * .05 / R) = 0.022.
    assert abs(row["coverage"] - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / R), row["coverage"]


@pytest.mark.parametrize("term", FIXED)
def test_listwise_and_pooled_are_unbiased_under_mcar(summary, term):
    for method in ("listwise", "pooled", "complete"):
        row = summary.loc[(method, term)]
        assert abs(row["bias"]) <= 3 * row["bias_mcse"], (method, row["bias"], row["bias_mcse"])
