"""GLMMs of several random terms, mlmi beside lme4's glmer on the same machine (issue 16).

usage: python benchmarks/glmer_terms.py [--repeats 3]

The two cases of tests/data/glmm_lme4.json with several terms: lme4's grouseticks example (Poisson,
an observation-level effect in broods in locations: 403 + 118 + 63 effects) and a binary outcome of
pupils in classes in schools with a random slope per school. R times ``glmer`` (defaults: Laplace, its
two stages) ``--repeats`` times (``benchmarks/glmer_terms.R``); this process times ``mlmi.fit.glmm.fit_glmm``
as often. Prints the median seconds (wall and CPU) of each, their ratio, both deviances, and the load
average. Needs R with lme4; writes only to a temporary folder.
"""
import os
import statistics
from pathlib import Path

import pandas as pd

from mlmi.fit.glmm import fit_glmm
from timing import r_run, repeats_argument, timed

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CASES = {"grouseticks_nested": ("grouseticks.csv", "poisson",
                                "TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"),
         "binary_nested": ("binary_nested.csv", "binomial", "y ~ x + (1 + x | school) + (1 | school:class)")}


def mlmi_times(case: str, repeats: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds of mlmi's fits of one case, and the deviance."""
    file, family, formula = CASES[case]
    data = pd.read_csv(DATA / file)
    walls, cpus, record = timed(lambda: fit_glmm(data, formula, family), repeats)
    return statistics.median(walls), statistics.median(cpus), record["deviance"]


def main() -> None:
    repeats = repeats_argument(__doc__)
    load = os.getloadavg()[0]
    with r_run(Path(__file__).with_name("glmer_terms.R"), str(DATA), str(repeats)) as folder:
        r = pd.read_csv(folder / "timing.csv").groupby("case").median()
    print(f"median of {repeats}; seconds (wall, CPU); deviance")
    print(f"{'case':20}{'lme4 wall':>10}{'CPU':>7}{'mlmi wall':>10}{'CPU':>7}{'ratio':>7}"
          f"{'lme4 deviance':>17}{'mlmi deviance':>17}")
    for case in CASES:
        wall, cpu, deviance = mlmi_times(case, repeats)
        ref = r.loc[case]
        print(f"{case:20}{ref['elapsed']:10.2f}{ref['cpu']:7.2f}{wall:10.2f}{cpu:7.2f}{wall / ref['elapsed']:7.2f}"
              f"{ref['deviance']:17.6f}{deviance:17.6f}")
    print(f"load average (1 min) before {load:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
