"""A binary outcome through the whole workflow: the user's data, miceforest, glmer's fits, pooling, report, summary."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO.parent / "shared" / "checks" / "contract.py"
CONFIG = {"scenario": "binary", "data": {"source": "binary.csv"}, "imputation": {"m": 2, "iterations": 2},
          "model": {"formula": "y ~ x + z + (1 + x | g)", "reml": False, "family": "binomial"}}


def _run(workdir: Path, data_file: str, config: dict) -> Path:
    """The workflow run on ``data_file`` with 15% of x missing (MCAR) under ``config``; its results folder."""
    data = pd.read_csv(REPO / "tests" / "data" / data_file)
    data.loc[np.random.default_rng(5).random(len(data)) < 0.15, "x"] = np.nan
    data.to_csv(workdir / config["data"]["source"], index=False)
    (workdir / "extra.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                           "--configfile", str(workdir / "extra.yaml"), "--cores", "2"],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir / "results" / config["scenario"]


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    """The workflow run on binary_slope.csv."""
    return _run(tmp_path_factory.mktemp("binary"), "binary_slope.csv", CONFIG)


@pytest.fixture(scope="module")
def nested_run(tmp_path_factory) -> Path:
    """The workflow run on binary_nested.csv (pupils in classes in schools) with two random terms."""
    config = {**CONFIG, "scenario": "nested", "data": {"source": "nested.csv"},
              "model": {**CONFIG["model"], "formula": "y ~ x + (1 + x | school) + (1 | school:class)"}}
    return _run(tmp_path_factory.mktemp("nested"), "binary_nested.csv", config)


def test_binary_run_meets_the_contract_with_glmer_fits(binary_run):
    checked = subprocess.run([sys.executable, str(CONTRACT), str(binary_run)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    fit = json.loads((binary_run / "fits" / "imp_1.json").read_text())
    assert (fit["family"], fit["link"], fit["nagq"], fit["reml"]) == ("binomial", "logit", 1, False)
    assert fit["convergence"]["converged"]
    pooled = pd.read_csv(binary_run / "pooled" / "fixed_effects.csv")
    assert list(pooled["term"]) == ["(Intercept)", "x", "z"] and (pooled["dfcom"] == fit["n_obs"] - 6).all()
    assert "Residual" not in set(pd.read_csv(binary_run / "pooled" / "varcorr.csv")["grp"])


def test_binary_run_shows_odds_ratios(binary_run):
    page = (binary_run / "report.html").read_text()
    assert "Generalized linear mixed model (binomial family, logit link)" in page and "Odds ratios" in page
    said = subprocess.run([sys.executable, "-m", "mlmi", "summary", str(binary_run)], capture_output=True, text=True)
    assert said.returncode == 0 and "Odds ratios (exp of the pooled estimates and intervals):" in said.stdout
    assert list(pd.read_csv(binary_run / "pooled" / "ratios.csv")["term"]) == ["(Intercept)", "x", "z"]


def test_a_glmm_of_two_random_terms_runs_through(nested_run):
    """glmer's fits of two grouping factors: pooled per factor, as lme4 names them, in the report and summary."""
    checked = subprocess.run([sys.executable, str(CONTRACT), str(nested_run)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    fit = json.loads((nested_run / "fits" / "imp_1.json").read_text())
    assert fit["n_groups"] == {"school:class": 124, "school": 40} and fit["convergence"]["converged"]
    info = pd.read_csv(nested_run / "pooled" / "model_info.csv")
    assert (info["n_levels"] == 2).all()
    varcorr = pd.read_csv(nested_run / "pooled" / "varcorr.csv")
    assert list(dict.fromkeys(varcorr["grp"])) == ["school:class", "school"]
    assert set(pd.read_csv(nested_run / "pooled" / "ranef.csv")["group"]) == {"school:class", "school"}
    page = (nested_run / "report.html").read_text()
    assert "Generalized linear mixed model (binomial family, logit link)" in page and "school:class" in page
