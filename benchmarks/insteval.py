"""A crossed model at InstEval's scale, mlmi beside lme4 on the same machine (issue 16).

usage: python benchmarks/insteval.py [--repeats 3]

lme4's InstEval: 73,421 ratings of 1,128 lecturers (``d``) by 2,972 students (``s``), the model
``y ~ service + (1 | s) + (1 | d)``. R exports the data and times ``lmer`` ``--repeats`` times
(``benchmarks/insteval.R``); this process times ``mlmi.fit.lmer.fit_mixed`` on the same CSV as often. Prints
the median seconds of each (wall clock; and CPU, since the machine may be shared), their ratio, both REML
criteria, and the load average before and after. Needs R with lme4 (Debian: r-base-core r-cran-lme4); writes
only to a temporary folder.
"""
import os
import statistics
from pathlib import Path

import pandas as pd

from mlmi.fit.lmer import fit_mixed
from timing import r_run, repeats_argument, timed

R_SCRIPT = Path(__file__).with_name("insteval.R")
FORMULA = "y ~ service + (1 | s) + (1 | d)"


def mlmi_times(data: pd.DataFrame, repeats: int) -> tuple[list[float], list[float], float]:
    """Wall and CPU seconds of each mlmi fit, and the REML criterion of the last."""
    walls, cpus, record = timed(lambda: fit_mixed(data, FORMULA), repeats)
    return walls, cpus, record["reml_criterion"]


def main() -> None:
    repeats = repeats_argument(__doc__)
    load = os.getloadavg()[0]
    with r_run(R_SCRIPT, str(repeats)) as folder:
        r = pd.read_csv(folder / "timing.csv")
        data = pd.read_csv(folder / "insteval.csv", dtype={"service": str, "s": str, "d": str})
    walls, cpus, criterion = mlmi_times(data, repeats)
    lme4_wall, lme4_cpu = r["elapsed"].median(), r["cpu"].median()
    print(f"InstEval, {FORMULA}: {len(data)} rows, {data['s'].nunique()} s x {data['d'].nunique()} d; "
          f"median of {repeats}")
    print(f"{'':8}{'wall s':>10}{'CPU s':>10}{'REML criterion':>18}")
    print(f"{'lme4':8}{lme4_wall:10.2f}{lme4_cpu:10.2f}{r['reml_criterion'].iloc[-1]:18.6f}")
    print(f"{'mlmi':8}{statistics.median(walls):10.2f}{statistics.median(cpus):10.2f}{criterion:18.6f}")
    print(f"mlmi / lme4: wall {statistics.median(walls) / lme4_wall:.2f}, CPU {statistics.median(cpus) / lme4_cpu:.2f}")
    print(f"load average (1 min) before {load:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
