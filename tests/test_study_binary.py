"""config/studies/binary.yaml made tiny and run through Snakemake: a binomial (logit) study of the simulated binary
outcome, its summary holding bias and coverage for every logit-scale fixed effect and the school SDs."""
import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlmi.run.plan import merge
from mlmi.run.study import plan_study
from test_workflow import finished

CONFIG = Path(__file__).resolve().parents[1] / "config"
STUDIES = CONFIG / "studies"
FIXED = ["(Intercept)", "minority", "female", "ses", "meanses"]


def tiny(config: dict) -> dict:
    """The study at test size: 25 schools, m = 2, 2 iterations, 2 replications; on_failed_fit warn, so that a tiny
    replication whose random slope fails lme4's checks in one imputation still pools the others."""
    config = copy.deepcopy(config)
    config["scenario"] = "tiny_binary"
    config["data"]["simulate"]["n_schools"] = 25
    config["imputation"].update(m=2, iterations=2)
    config["pooling"] = {"on_failed_fit": "warn", "mertools_legacy": True}
    config["study"]["replications"] = 2
    return config


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    config = tiny(yaml.safe_load((STUDIES / "binary.yaml").read_text()))
    return finished(tmp_path_factory.mktemp("binary_study"), config)


def test_the_example_is_a_binomial_logit_study_of_the_binary_outcome():
    config = yaml.safe_load((STUDIES / "binary.yaml").read_text())
    assert config["data"]["simulate"]["outcome"] == "binary"
    assert (config["model"]["family"], config["model"]["link"], config["model"]["reml"]) == ("binomial", "logit", False)
    assert config["missingness"]["mechanism"] == "MCAR"


@pytest.mark.parametrize("overrides", [["binary_r50.yaml"], ["binary_r50.yaml", "binary_outcome_observed.yaml"]])
def test_the_runs_of_docs_glmm_plan(overrides):
    """The configs docs/glmm.md runs merged as --configfile merges them: each passes the start-up checks."""
    config = yaml.safe_load((CONFIG / "config.yaml").read_text())
    for name in ["binary.yaml", *overrides]:
        config = merge(config, yaml.safe_load((STUDIES / name).read_text()))
    (planned,) = plan_study(config, yaml.safe_load((CONFIG / "schema.yaml").read_text())).values()
    assert (config["study"]["replications"], planned["imputation"]["m"], planned["imputation"]["iterations"]) == \
        (50, 3, 3)
    assert planned["missingness"]["prob"]["passed"] == (0.0 if len(overrides) == 2 else 0.1)


def test_summary_has_bias_and_coverage_of_the_logit_scale_terms(study):
    summary = pd.read_csv(study / "summary.csv").set_index(["method", "term"])
    truth = json.loads((study / "base" / "rep_1" / "data" / "truth.json").read_text())
    assert (truth["family"], truth["link"], truth["sigma"]) == ("binomial", "logit", None)
    for method in ("complete", "listwise", "pooled"):
        for term in FIXED:
            row = summary.loc[(method, term)]
            assert row["n_reps"] == 2
            assert row["bias"] == pytest.approx(row["mean_estimate"] - truth["fixed_effects"][term], abs=1e-12)
            assert 0 <= row["coverage"] <= 1 and row["coverage_mcse"] >= 0 and row["bias_mcse"] > 0, (method, term)
        for term in ("sd__(Intercept)", "sd__ses", "cor__(Intercept).ses"):
            assert pd.notna(summary.loc[(method, term), "bias"]), (method, term)
    assert "sd__Observation" not in set(summary.index.get_level_values("term"))   # a logistic model has none


def test_the_outcome_was_imputed_as_0_or_1(study):
    run = study / "base" / "rep_1"
    missing = pd.read_parquet(run / "data" / "missing.parquet")
    assert missing["passed"].isna().any()
    for k in (1, 2):
        imputed = pd.read_parquet(run / "imputations" / f"imp_{k}.parquet")
        assert set(imputed.loc[missing["passed"].isna(), "passed"]) <= {0, 1}
        assert imputed["passed"].notna().all()
    legacy = pd.read_csv(run / "pooled" / "mertools_fixed_effects.csv")
    assert sorted(legacy["term"]) == sorted(FIXED)
