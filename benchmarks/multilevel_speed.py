"""Time one multilevel (SMC) imputation of hsb-size data against R's jomo.lmer with as many iterations.

usage: python benchmarks/multilevel_speed.py [BURN_IN]   (default: mlmi.impute.multilevel.DEFAULT_BURN_IN)

The data: ``mlmi.data.simulate.simulate_hsb`` with config/config.yaml's ``data.simulate`` settings and
seed (160 schools, ~7,200 students), then 30% of ``ses`` made missing at random on ``mathach``
(``mlmi.data.ampute``, MAR, strength 1). The model: config/config.yaml's formula,
``mathach ~ minority + female + ses + meanses + (1 + ses | schid)``, with the observed ``meanses``.

What is timed, for each side, is the wall clock of one call that makes one imputation from the
incomplete data, start-up of its language and the data's reading left out:

- mlmi: ``impute_multilevel(data, formula, seed=1, burn_in=BURN_IN, exclude=["size", "schtype"])``,
  its set-up (design, starting values, models) included;
- R: ``jomo.lmer.MCMCchain(formula, data, nburn=BURN_IN)`` on the same rows written to CSV, jomo's
  own single-chain function (``jomo.lmer`` itself insists on nimp >= 2 and then runs ``nbetween``
  more iterations per extra imputation); its start-up complete-case ``lmer`` fit included, as ours is.

Both run single-threaded. The machine is shared, so the figures move with its load; the ratio of
the two, measured back to back, moves less.
"""
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from mlmi.data.ampute import ampute
from mlmi.data.simulate import simulate_hsb
from mlmi.impute.multilevel import DEFAULT_BURN_IN, impute_multilevel

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["schid", "minority", "female", "ses", "mathach", "meanses"]
R_SCRIPT = """
suppressMessages(library(jomo))
data <- read.csv("{csv}")
set.seed(1)
invisible(capture.output(start <- proc.time()[["elapsed"]],
                         chain <- jomo.lmer.MCMCchain({formula}, data, nburn = {burn_in}),
                         end <- proc.time()[["elapsed"]]))
cat(end - start, "\\n")
"""


def hsb_with_missing_ses():
    """The default config's simulated data with 30% of ses missing at random on mathach."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    data, _ = simulate_hsb(config["data"]["simulate"], np.random.default_rng(config["seed"]))
    amputed = ampute(data, mechanism="MAR", prob={"ses": 0.3}, predictors={"ses": ["mathach"]},
                     rng=np.random.default_rng(config["seed"] + 1))
    return amputed, config["model"]["formula"]


def time_mlmi(data, formula: str, burn_in: int) -> float:
    """Seconds of one impute_multilevel call."""
    start = time.perf_counter()
    impute_multilevel(data, formula, seed=1, burn_in=burn_in, exclude=["size", "schtype"])
    return time.perf_counter() - start


def time_jomo(data, formula: str, burn_in: int) -> float | None:
    """Seconds of one jomo.lmer.MCMCchain call, or None without Rscript or jomo."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "hsb.csv"
        data[COLUMNS].to_csv(csv, index=False)
        script = Path(folder) / "jomo.R"
        script.write_text(R_SCRIPT.format(csv=csv, formula=formula, burn_in=burn_in))
        run = subprocess.run(["Rscript", str(script)], capture_output=True, text=True,
                             env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if run.returncode != 0:
        print(f"jomo not timed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
        return None
    return float(run.stdout.split()[-1])


def main() -> None:
    burn_in = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_BURN_IN
    data, formula = hsb_with_missing_ses()
    print(f"{len(data)} students in {data['schid'].nunique()} schools, {data['ses'].isna().mean():.1%} of ses missing;"
          f" {burn_in} iterations; {formula}")
    ours = time_mlmi(data, formula, burn_in)
    print(f"mlmi impute_multilevel: {ours:.2f} s ({1000 * ours / burn_in:.2f} ms per iteration)")
    theirs = time_jomo(data, formula, burn_in)
    if theirs is not None:
        print(f"jomo.lmer.MCMCchain:    {theirs:.2f} s ({1000 * theirs / burn_in:.2f} ms per iteration)")
        print(f"jomo / mlmi: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
