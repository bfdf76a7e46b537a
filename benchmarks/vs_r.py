"""mlmi beside the R vignette workflow (Amelia + lme4 + merTools), on the same machine, in one go (issue 15).

usage: python benchmarks/vs_r.py [--m 5 50] [--repeats 7] [--study-replications 320]

Prints seconds and ratios (mlmi / R) for:

- one fit of the vignette model on the same complete data set (an imputation of the default run), warm,
  median of ``--repeats``: ``mlmi.fit.fit_mixed`` in this process, ``lme4::lmer`` in R;
- imputation per data set: the median impute job of the default pipeline (a whole job: its process, imports,
  reading and writing), and mlmi's imputation alone in this process, beside Amelia's ``amelia()`` call / m;
- the default pipeline end to end at each ``--m``: ``snakemake --cores 2`` on the default config (scenario
  ``vs_r_m<m>``, every job forced) against the R script ``benchmarks/vignette.R`` (Rscript's start, loading
  the packages, Amelia, the listwise and m lmer fits, merTools' pooling) on that run's own incomplete data;
- ``snakemake -n`` on config/studies/quick.yaml grown to ``--study-replications`` replications (320: about
  10,000 jobs), the time to plan a study.

and the machine's load average before and after, since the seconds move with it (the ratios less so).

Writes only under ``results/vs_r_m<m>/`` (the runs, and R's CSV copies of their data in ``r/``); the study's
configuration is a temporary file. Needs R with Amelia, lme4 and merTools (Debian: r-base-core r-cran-amelia
r-cran-lme4 r-cran-mertools); installs nothing itself.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
R_SCRIPT = Path(__file__).with_name("vignette.R")
FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"


def wall(command: list[str], **kwargs) -> float:
    """Wall-clock seconds of one run of ``command`` in the repository (which must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - start


def run_pipeline(m: int, folder: Path) -> float:
    """Seconds of the default pipeline at m imputations (scenario ``vs_r_m<m>``, from scratch, 2 cores)."""
    shutil.rmtree(REPO / "results" / f"vs_r_m{m}", ignore_errors=True)
    config = folder / f"m{m}.yaml"
    config.write_text(f"scenario: vs_r_m{m}\nimputation: {{m: {m}}}\n")
    return wall([sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "--configfile", str(config)])


def run_r(m: int) -> tuple[float, dict]:
    """Seconds of the whole R script on the run's incomplete data, and its own step times."""
    run = REPO / "results" / f"vs_r_m{m}"
    (run / "r").mkdir(exist_ok=True)
    missing, complete, timing = run / "r" / "missing.csv", run / "r" / "imp_1.csv", run / "r" / "timing.csv"
    pd.read_parquet(run / "data" / "missing.parquet").to_csv(missing, index=False, na_rep="")
    pd.read_parquet(run / "imputations" / "imp_1.parquet").to_csv(complete, index=False)
    seconds = wall(["Rscript", str(R_SCRIPT), f"input={missing}", f"fit_data={complete}", f"output={timing}",
                    f"m={m}", f"repeats={ARGS.repeats}"])
    return seconds, dict(pd.read_csv(timing).itertuples(index=False))


def one_fit_seconds(m: int) -> float:
    """Median seconds of ``fit_mixed`` on the run's first imputation, after one warm-up fit."""
    from mlmi.fit import fit_mixed

    data = pd.read_parquet(REPO / "results" / f"vs_r_m{m}" / "imputations" / "imp_1.parquet")
    fit_mixed(data, FORMULA)
    times = []
    for _ in range(ARGS.repeats):
        start = time.perf_counter()
        fit_mixed(data, FORMULA)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def impute_seconds(m: int) -> tuple[float, float]:
    """The run's median impute job (Snakemake's benchmark file), and one imputation alone in this process."""
    import yaml

    from mlmi.impute import impute
    from mlmi.imputation_models import method_settings
    from mlmi.inputs import imputation_roles

    run = REPO / "results" / f"vs_r_m{m}"
    jobs = statistics.median(float(pd.read_csv(path, sep="\t")["s"].iloc[0])
                             for path in (run / "benchmarks" / "impute").glob("*.tsv"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    imputation = config["imputation"] | imputation_roles(config)
    data = pd.read_parquet(run / "data" / "missing.parquet")
    start = time.perf_counter()
    impute(imputation["method"], data, FORMULA, seed=1, **method_settings(imputation))
    return jobs, time.perf_counter() - start


def plan_seconds(folder: Path) -> tuple[float, int]:
    """Seconds of ``snakemake -n`` on the quick study grown to ARGS.study_replications, and its number of jobs."""
    grown = folder / "study.yaml"
    grown.write_text(f"study: {{replications: {ARGS.study_replications}}}\n")
    command = [sys.executable, "-m", "snakemake", "-n", "--configfile", str(REPO / "config/studies/quick.yaml"),
               str(grown)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    total = next(line for line in done.stdout.splitlines() if line.startswith("total"))
    return seconds, int(total.split()[1])


def row(what: str, r: float, mlmi: float) -> str:
    """One line of the table: R's and mlmi's seconds and their ratio."""
    return f"{what:<52} {r:8.2f} {mlmi:8.2f} {mlmi / r:7.2f}x"


def main() -> None:
    load = os.getloadavg()[0]
    lines = [f"{'':<52} {'R s':>8} {'mlmi s':>8} {'mlmi/R':>8}"]
    with tempfile.TemporaryDirectory() as tmp:
        for m in ARGS.m:
            pipeline = run_pipeline(m, Path(tmp))
            script, steps = run_r(m)
            if m == ARGS.m[0]:
                lines.append(row("one fit (warm, median, same data)", steps["one_fit_median"], one_fit_seconds(m)))
                job, alone = impute_seconds(m)
                per_set = steps["amelia"] / m
                lines.append(row("imputation per data set: mlmi's impute job", per_set, job))
                lines.append(row("imputation per data set: the imputation alone", per_set, alone))
            lines.append(row(f"default pipeline end to end, m = {m}", script, pipeline))
        plan, jobs = plan_seconds(Path(tmp))
    print("\n".join(lines))
    print(f"snakemake -n on a study of {jobs} jobs: {plan:.1f} s (R has no counterpart)")
    print(f"load average (1 min) before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, nargs="+", default=[5, 50], help="imputations of the end-to-end runs")
    parser.add_argument("--repeats", type=int, default=7, help="fits timed for the one-fit median (default 7)")
    parser.add_argument("--study-replications", type=int, default=320,
                        help="replications of config/studies/quick.yaml for the planning time (default 320)")
    ARGS = parser.parse_args()
    main()
