"""mlmi beside the R vignette workflow (Amelia + lme4 + merTools), on the same machine, in one go (issue 15).

usage: python benchmarks/vs_r.py [--m 5 50] [--repeats 7] [--study-replications 320] [--only plan|impute|fit]

Prints seconds and ratios (mlmi / R) for:

- one fit of the vignette model on the same complete data set (an imputation of the default run), warm,
  median of ``--repeats``: ``mlmi.fit.lmer.fit_mixed`` in this process, ``lme4::lmer`` in R; ``--only fit`` measures
  this row alone (on the first ``--m``'s run, made only when it is not there yet);
- imputation per data set: the median impute job of the default pipeline (a whole job: its process, imports,
  reading and writing), and mlmi's imputation alone in this process (median of ``--repeats``, seeds 1, 2, ...),
  beside Amelia's ``amelia()`` call / m; ``--only impute`` measures these, the one fit and the pipeline at the
  first ``--m`` alone (no planning);
- the default pipeline end to end at each ``--m``: ``snakemake --cores 2`` on the default config (scenario
  ``vs_r_m<m>``, every job forced) against the R script ``benchmarks/vignette.R`` (Rscript's start, loading
  the packages, Amelia, the listwise and m lmer fits, merTools' pooling) on that run's own incomplete data; and
  beside it Snakemake's own floor for that run: the same DAG at that m from rules that do nothing, run the same way
  (its start, and a process with Snakemake's script preamble per job);
- ``snakemake -n`` on config/studies/quick.yaml grown to ``--study-replications`` replications (320: about
  10,000 jobs), the time to plan a study, with the CPU seconds it used (on a busy machine the wall clock
  mostly measures waiting), beside Snakemake's own floor for that DAG (the same jobs from rules that do nothing,
  planned with mlmi's workflow profile); ``--only plan`` measures this alone, without R;
- ``snakemake --version``: Snakemake's start before it reads a workflow, which every run and plan above pays (where
  Slurm's executor plugin is installed it asks ``scontrol show config`` at import, which waits up to 10 s when no
  Slurm controller answers).

and the machine's load average before and after, since the seconds move with it (the ratios less so).

Writes only under ``results/vs_r_m<m>/`` (the runs, and R's CSV copies of their data in ``r/``); the study's
configuration is a temporary file. Needs R with Amelia, lme4 and merTools (Debian: r-base-core r-cran-amelia
r-cran-lme4 r-cran-mertools); installs nothing itself.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from mlmi.run.plan import scenarios

REPO = Path(__file__).resolve().parents[1]
R_SCRIPT = Path(__file__).with_name("vignette.R")
FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"
#: The jobs of one run of the default pipeline (design §1), as rules that do nothing: (name, inputs, outputs,
#: wildcard of its log). Each writes empty outputs and has a log, a benchmark and a script, as mlmi's rules have.
PIPELINE_STEPS = [
    ("simulate", "[]", '"{run}/complete", "{run}/truth"', ""),
    ("ampute", '"{run}/complete"', '"{run}/missing"', ""),
    ("impute", '"{run}/missing"', '"{run}/imp_{k}", "{run}/chains_{k}", "{run}/trace_{k}"', "_{k}"),
    ("fit", '"{run}/imp_{k}"', '"{run}/fit_{k}"', "_{k}"),
    ("fit_listwise", '"{run}/missing"', '"{run}/listwise"', ""),
    ("pool", 'expand("{{run}}/fit_{k}", k=M), "{run}/listwise"', '"{run}/pooled", "{run}/random_effects"', ""),
]
#: A study's run ends with the fit of the complete data and its replication's estimates (config/studies/quick.yaml);
#: a default run has the imputation models' table, and ends with the report and the provenance record.
STUDY_STEPS = PIPELINE_STEPS + [
    ("fit_complete", '"{run}/complete"', '"{run}/complete_fit"', ""),
    ("replication", '"{run}/pooled", "{run}/random_effects", "{run}/listwise", "{run}/complete_fit"',
     '"{run}/estimates"', ""),
]
RUN_STEPS = PIPELINE_STEPS + [
    ("imputation_models", '"{run}/missing"', '"{run}/models"', ""),
    ("report", '"{run}/pooled", "{run}/models", expand("{{run}}/imp_{k}", k=M), expand("{{run}}/chains_{k}", k=M)',
     '"{run}/report"', ""),
    ("provenance", '"{run}/report"', '"{run}/provenance"', ""),
]
FLOOR_HEADER = """
RUNS = [f"s/{i}" for i in range(config["runs"])]
M = range(1, config["imputations"] + 1)
wildcard_constraints:
    run=r"s/\\d+", k=r"\\d+"
"""
#: A job that does nothing but write its (empty) outputs.
NOOP_SCRIPT = "for path in snakemake.output:\n    open(path, 'w').close()\n"


def floor_rules(steps) -> str:
    """The Snakefile text of ``steps``' rules, each doing nothing (NOOP_SCRIPT) with a log and a benchmark."""
    return "".join(f"""
rule {name}:
    input: {inputs}
    output: {outputs}
    log: "{{run}}/logs/{name}{wildcard}"
    benchmark: "{{run}}/benchmarks/{name}{wildcard}"
    threads: 1
    script: "noop.py"
""" for name, inputs, outputs, wildcard in steps)


#: Snakemake's own cost of planning: the quick study's DAG (per run: simulate, ampute, m imputations and fits, the
#: listwise and complete fits, pool, replication; then a summary) with rules that do nothing, take no params and
#: call no function, planned with mlmi's workflow profile (its resources per rule, its quiet dry-run lines), as
#: mlmi's own workflow is.
STUDY_FLOOR = FLOOR_HEADER + """
rule all:
    input: "summary"
rule summary:
    input: expand("{run}/estimates", run=RUNS)
    output: "summary"
    script: "noop.py"
""" + floor_rules(STUDY_STEPS)
#: Snakemake's own cost of running the default pipeline: its DAG at m imputations with rules that do nothing, run
#: as mlmi's is (2 cores, mlmi's workflow profile): Snakemake's start, and building, starting and waiting for each
#: job, a process with Snakemake's script preamble.
RUN_FLOOR = FLOOR_HEADER + """
rule all:
    input: expand("{run}/provenance", run=RUNS)
""" + floor_rules(RUN_STEPS)


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
    from mlmi.fit.lmer import fit_mixed

    data = pd.read_parquet(REPO / "results" / f"vs_r_m{m}" / "imputations" / "imp_1.parquet")
    fit_mixed(data, FORMULA)
    times = []
    for _ in range(ARGS.repeats):
        start = time.perf_counter()
        fit_mixed(data, FORMULA)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def impute_seconds(m: int) -> tuple[float, float]:
    """The run's median impute job (Snakemake's benchmark file), and the median of ARGS.repeats imputations alone
    in this process (after one warm-up, which loads LightGBM)."""
    from mlmi.impute.miceforest import impute
    from mlmi.impute.models import method_settings
    from mlmi.run.inputs import imputation_roles

    run = REPO / "results" / f"vs_r_m{m}"
    jobs = statistics.median(float(pd.read_csv(path, sep="\t")["s"].iloc[0])
                             for path in (run / "benchmarks" / "impute").glob("*.tsv"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    imputation = config["imputation"] | imputation_roles(config)
    data = pd.read_parquet(run / "data" / "missing.parquet")
    impute(imputation["method"], data, FORMULA, seed=0, **method_settings(imputation))
    times = []
    for seed in range(1, ARGS.repeats + 1):
        start = time.perf_counter()
        impute(imputation["method"], data, FORMULA, seed=seed, **method_settings(imputation))
        times.append(time.perf_counter() - start)
    return jobs, statistics.median(times)


def plan_seconds(folder: Path) -> tuple[float, float, int]:
    """Seconds and CPU seconds of ``snakemake -n`` on the quick study grown to ARGS.study_replications, and its
    number of jobs."""
    grown = folder / "study.yaml"
    grown.write_text(f"study: {{replications: {ARGS.study_replications}}}\n")
    command = [sys.executable, "-m", "snakemake", "-n", "--configfile", str(REPO / "config/studies/quick.yaml"),
               str(grown)]
    start, cpu = time.perf_counter(), children_cpu_seconds()
    done = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu
    total = next(line for line in done.stdout.splitlines() if line.startswith("total"))
    return seconds, cpu, int(total.split()[1])


def floor_seconds(folder: Path) -> tuple[float, float, int]:
    """Seconds and CPU seconds of ``snakemake -n`` on STUDY_FLOOR with the study's runs and m, and its jobs."""
    study = yaml.safe_load((REPO / "config/studies/quick.yaml").read_text())
    runs = ARGS.study_replications * len(scenarios(study["study"]))
    start, cpu = time.perf_counter(), children_cpu_seconds()
    done = run_floor(folder / "study_floor", STUDY_FLOOR, ["-n"], runs=runs, imputations=study["imputation"]["m"])
    seconds, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu
    total = next(line for line in done.stdout.splitlines() if line.startswith("total"))
    return seconds, cpu, int(total.split()[1])


def run_floor_seconds(m: int, folder: Path) -> float:
    """Seconds of RUN_FLOOR at m imputations, run as ``run_pipeline`` runs mlmi's (``--cores 2``)."""
    start = time.perf_counter()
    run_floor(folder / f"run_floor_m{m}", RUN_FLOOR, ["--cores", "2", "--quiet"], runs=1, imputations=m)
    return time.perf_counter() - start


def run_floor(floor: Path, snakefile: str, options: list[str], **config) -> subprocess.CompletedProcess:
    """Snakemake with ``options`` on ``snakefile`` (its noop.py beside it) in a new folder ``floor``, with mlmi's
    workflow profile and ``config``."""
    floor.mkdir()
    (floor / "Snakefile").write_text(snakefile)
    (floor / "noop.py").write_text(NOOP_SCRIPT)
    command = [sys.executable, "-m", "snakemake", *options, "--workflow-profile", str(REPO / "profiles" / "default"),
               "--config", *(f"{key}={value}" for key, value in config.items())]
    return subprocess.run(command, cwd=floor, check=True, capture_output=True, text=True)


def snakemake_start_seconds() -> tuple[float, float]:
    """Seconds and CPU seconds of ``snakemake --version``: Snakemake's start before it reads any workflow (its imports
    and its executor plugins'), which the main process of every run and plan pays."""
    start, cpu = time.perf_counter(), children_cpu_seconds()
    subprocess.run([sys.executable, "-m", "snakemake", "--version"], check=True, capture_output=True)
    return time.perf_counter() - start, children_cpu_seconds() - cpu


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def row(what: str, r: float, mlmi: float) -> str:
    """One line of the table: R's and mlmi's seconds and their ratio."""
    return f"{what:<52} {r:8.2f} {mlmi:8.2f} {mlmi / r:7.2f}x"


def main() -> None:
    load = os.getloadavg()[0]
    lines, floors = [f"{'':<52} {'R s':>8} {'mlmi s':>8} {'mlmi/R':>8}"], []
    with tempfile.TemporaryDirectory() as tmp:
        for m in {"plan": [], "impute": ARGS.m[:1], "fit": ARGS.m[:1]}.get(ARGS.only, ARGS.m):
            reuse = ARGS.only == "fit" and (REPO / "results" / f"vs_r_m{m}" / "imputations" / "imp_1.parquet").exists()
            pipeline = None if reuse else run_pipeline(m, Path(tmp))
            script, steps = run_r(m)
            if m == ARGS.m[0]:
                lines.append(row("one fit (warm, median, same data)", steps["one_fit_median"], one_fit_seconds(m)))
            if m == ARGS.m[0] and ARGS.only != "fit":
                job, alone = impute_seconds(m)
                per_set = steps["amelia"] / m
                lines.append(row("imputation per data set: mlmi's impute job", per_set, job))
                lines.append(row("imputation per data set: the imputation alone", per_set, alone))
            if ARGS.only != "fit":
                lines.append(row(f"default pipeline end to end, m = {m}", script, pipeline))
                floors.append(f"the default pipeline's DAG at m = {m} with jobs that do nothing, run as mlmi's is "
                              f"(Snakemake's own floor): {run_floor_seconds(m, Path(tmp)):.1f} s")
        if ARGS.only not in ("impute", "fit"):
            plan, cpu, jobs = plan_seconds(Path(tmp))
            floor, floor_cpu, floor_jobs = floor_seconds(Path(tmp))
    if ARGS.only != "plan":
        print("\n".join(lines + floors))
    if ARGS.only not in ("impute", "fit"):
        print(f"snakemake -n on a study of {jobs} jobs: {plan:.1f} s, {cpu:.1f} CPU s (R has no counterpart)")
        print(f"snakemake -n on the same DAG of rules that do nothing ({floor_jobs} jobs), Snakemake's own floor: "
              f"{floor:.1f} s, {floor_cpu:.1f} CPU s")
    if ARGS.only != "fit":
        start, start_cpu = snakemake_start_seconds()
        print(f"snakemake --version, Snakemake's start that every run and plan pays before reading the workflow: "
              f"{start:.1f} s, {start_cpu:.1f} CPU s")
    print(f"load average (1 min) before: {load:.2f}, after: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m", type=int, nargs="+", default=[5, 50], help="imputations of the end-to-end runs")
    parser.add_argument("--repeats", type=int, default=7,
                        help="fits, and imputations, timed for the one-fit and imputation medians (default 7)")
    parser.add_argument("--study-replications", type=int, default=320,
                        help="replications of config/studies/quick.yaml for the planning time (default 320)")
    parser.add_argument("--only", choices=["plan", "impute", "fit"],
                        help="measure only this: plan, the study's dry run (no R); impute, the rows of the first --m; "
                             "fit, the one fit (the first --m's run made only if missing)")
    ARGS = parser.parse_args()
    main()
