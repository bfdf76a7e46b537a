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


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    """The workflow run on binary_slope.csv with 15% of x missing; its results folder."""
    workdir = tmp_path_factory.mktemp("binary")
    data = pd.read_csv(REPO / "tests" / "data" / "binary_slope.csv")
    data.loc[np.random.default_rng(5).random(len(data)) < 0.15, "x"] = np.nan
    data.to_csv(workdir / "binary.csv", index=False)
    (workdir / "extra.yaml").write_text(yaml.safe_dump(CONFIG))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                           "--configfile", str(workdir / "extra.yaml"), "--cores", "2"],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir / "results" / "binary"


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
