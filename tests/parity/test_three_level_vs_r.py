"""Parity with R for a model of several grouping factors pooled over imputations (issue 16).

mlmi simulates three-level data (students in classes in schools: ``data.simulate.n_classes``), makes ses
and minority missing completely at random and imputes them with its own miceforest (the school as the
clusters, the class means beside the school means as predictors), m = 5. The completed data sets are
written to CSV; ``three_level_mice.R`` fits ``lmer(mathach ~ ... + (1 | schid/classid))`` on each and
pools with ``mice::pool``; mlmi fits the same CSV files with ``mlmi.fit.lmer.fit_mixed`` and pools them with
``mlmi.pool.rubin.pool``. Tolerances are those of ``test_lme4_mice.py``: per fit, fixed effects and SEs 1e-4
relative, SDs and sigma 1e-3 relative, the REML criterion 1e-3 absolute; pooled, every column of
pooled/fixed_effects.csv 1e-4 relative and df 1e-3 relative, m and dfcom equal.

Needs Rscript with lme4, mice, broom.mixed and jsonlite (skipped with the reason otherwise):
``python -m pytest tests/parity/test_three_level_vs_r.py`` (about 30 s on 2 cores).
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_lme4_mice import Comparison, compare_pooled   # skips this module too when R is lacking

from mlmi.data.ampute import ampute_from_config
from mlmi.data.simulate import simulate_hsb
from mlmi.fit.lmer import fit_mixed
from mlmi.fit.record import FitRecord, per_term
from mlmi.impute.miceforest import impute
from mlmi.pool.rubin import pool

HERE = Path(__file__).parent
R_SCRIPT = HERE / "three_level_mice.R"
FORMULA = "mathach ~ minority + female + ses + meanses + (1 | schid/classid)"
M = 5
#: miceforest as the workflow runs it on the simulated data (its ``auto`` lists made explicit).
SETTINGS = {"iterations": 3, "exclude": ["schid", "meanses", "classid"], "categorical": ["minority", "female"],
            "level2": ["size", "schtype"], "cluster_means": {}, "bootstrap": True, "cluster_predictors": True}


@pytest.fixture(scope="module")
def imputed(tmp_path_factory) -> Path:
    """m data sets mlmi imputed, as CSV (numbers rounded to 6 decimals, so both sides fit the file's values)."""
    folder = tmp_path_factory.mktemp("three_level")
    data, _ = simulate_hsb({"n_schools": 30, "n_classes": 3, "sd_class": 1.5}, np.random.default_rng(16))
    missing = ampute_from_config(data, {"mechanism": "MCAR", "prob": {"ses": 0.25, "minority": 0.1}},
                                 np.random.default_rng(17))
    for k in range(1, M + 1):
        completed, _, _ = impute("miceforest", missing, FORMULA, seed=1600 + k, **SETTINGS)
        completed.round(6).to_csv(folder / f"imp{k}.csv", index=False)
    done = subprocess.run(["Rscript", str(R_SCRIPT), str(folder), FORMULA, str(M)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{R_SCRIPT.name} failed:\n{done.stderr[-4000:]}"
    return folder


@pytest.fixture(scope="module")
def fits(imputed) -> list[dict]:
    """mlmi's fits of the very CSV files lme4 fitted."""
    return [fit_mixed(pd.read_csv(imputed / f"imp{k}.csv"), FORMULA, reml=True, label=f"imp{k}")
            for k in range(1, M + 1)]


def reference(imputed: Path) -> dict:
    """R's numbers (lme4.json)."""
    return json.loads((imputed / "lme4.json").read_text())


def test_the_imputations_differ_and_keep_the_ids(imputed):
    """The parity is about pooling real between-imputation variance, over ids miceforest left alone."""
    first, second = (pd.read_csv(imputed / f"imp{k}.csv") for k in (1, 2))
    assert not first["ses"].equals(second["ses"])
    assert first[["schid", "classid"]].equals(second[["schid", "classid"]])


def test_each_fit_matches_lme4(imputed, fits, worst_differences):
    compare = Comparison("three_level_30x3_m5", worst_differences)
    for k, (fit, lme4) in enumerate(zip(fits, reference(imputed)["fits"]), start=1):
        where = f" (imputation {k})"
        compare.close("fixef", [row["estimate"] for row in fit["fixed_effects"]], list(lme4["fixef"].values()),
                      rtol=1e-4, where=where)
        compare.close("std_error", [row["std_error"] for row in fit["fixed_effects"]], list(lme4["se"].values()),
                      rtol=1e-4, where=where)
        ours = {(re["group"], name): sd for re in per_term(fit["random_effects"]) for name, sd in re["sd"].items()}
        ours[("Residual", None)] = fit["sigma"]
        theirs = dict(zip(zip(lme4["varcorr"]["grp"], lme4["varcorr"]["var1"]), lme4["varcorr"]["sdcor"]))
        compare.same("grouping factors", sorted(ours, key=str), sorted(theirs, key=str), where=where)
        compare.close("sd, sigma", [ours[key] for key in theirs], list(theirs.values()), rtol=1e-3, where=where)
        compare.close("reml_criterion", fit["reml_criterion"], lme4["reml_criterion"], atol=1e-3, where=where)
        compare.same("n_groups", fit["n_groups"], lme4["n_groups"], where=where)
        compare.same("n_levels", fit["n_levels"], 2, where=where)
    compare.verdict()


def test_pool_matches_mice(imputed, fits, worst_differences):
    compare = Comparison("three_level_30x3_m5 pooled", worst_differences)
    compare_pooled(compare, pool([FitRecord.from_fit(fit) for fit in fits]), reference(imputed))
    compare.verdict()
