"""Measure what every Snakemake job pays before it does any work, what of it is mlmi's, and what grouping saves on a
cluster.

usage: python benchmarks/job_overhead.py [STUDY_CONFIG] [--floor-only]   (default: config/studies/realistic.yaml)

Prints the median over a few repeats of: the interpreter's start; the imports of a job script
(mlmi.run.stages, and the module each rule's stage imports when it runs); a trivial `script:` job run by Snakemake
(a process, Snakemake's script preamble); Snakemake's start-up on this workflow (parse and DAG,
which every cluster job pays, and, with profiles/slurm, every job inside a group too, since the
plugin runs each as `srun python -m snakemake ...`); a Slurm round trip (`sbatch --wait` of a job
that does nothing), when Slurm answers. Then it counts the study's jobs with and without the
profile's grouping (a dry run) and puts the figures together.

Last, the floor of an impute job, a fit job and the pool job: the default pipeline runs to its pooled tables (m = 2,
in a temporary folder) keeping the scripts Snakemake wrote for its jobs (``--skip-script-cleanup``: Snakemake's
preamble, which unpickles the job's ``snakemake`` object, then scripts/impute.py, fit.py or pool.py), and each is
timed again, in wall-clock and CPU seconds: the interpreter; the preamble alone; the floor, preamble and pandas (with
pyarrow's Parquet reader for a job that reads Parquet), which any job of this shape pays; the job's imports (every
module the whole job had loaded when it ended, its stage's lazy imports and what its work imported included); the
whole job; each the least of a few runs. Its imports less the floor is what its step adds (the libraries it works with:
miceforest and LightGBM, nlopt, scipy's parts; and mlmi itself), printed with the packages it is made of.
"""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REPEATS = 3
#: Runs of each part of a job's floor (the least is kept; each takes about a second).
FLOOR_REPEATS = 9
RULE_MODULES = {"simulate": "mlmi.data.simulate", "ampute": "mlmi.data.ampute", "impute": "mlmi.impute.miceforest",
                "fit": "mlmi.fit.lmer", "fit_listwise": "mlmi.fit.lmer", "fit_complete": "mlmi.fit.lmer",
                "pool": "mlmi.pool.rubin", "replication": "mlmi.run.study", "study_summary": "mlmi.report.study_report",
                "report": "mlmi.report.run_report"}
#: The jobs whose floor is measured, and whether each reads Parquet (pandas then imports pyarrow's reader).
FLOOR_JOBS = {"impute": True, "fit": True, "pool": False}
#: Lines of a script Snakemake writes for a job that are its preamble (start marker, code, end marker).
PREAMBLE_LINES = 3
TRIVIAL_SNAKEFILE = """
rule trivial:
    output: "out/{i}.txt"
    script: "trivial.py"
"""


def seconds(command, cwd=None) -> float:
    """Median wall-clock seconds of ``command`` over REPEATS runs (each must succeed)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_seconds(module: str, start: float) -> float:
    """Seconds a fresh interpreter spends importing ``module``, less its own ``start``."""
    return seconds([sys.executable, "-c", f"import {module}"]) - start


def trivial_job_seconds(workdir: Path) -> float:
    """Seconds Snakemake adds per `script:` job that does nothing: (time of 6 jobs - time of 1) / 5."""
    (workdir / "Snakefile").write_text(TRIVIAL_SNAKEFILE)
    (workdir / "trivial.py").write_text("open(snakemake.output[0], 'w').close()\n")

    def run(n):
        return seconds([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet", "all", "--forcerun", "trivial",
                        "--", *(f"out/{i}.txt" for i in range(n))], cwd=workdir)

    return (run(6) - run(1)) / 5


def snakemake_start_seconds(workdir: Path) -> float:
    """Seconds Snakemake takes to parse mlmi's workflow and build the default config's DAG (a dry run)."""
    return seconds([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n",
                    "--quiet", "all"])


def slurm_round_trip_seconds() -> float | None:
    """Seconds from `sbatch` to the end of a job that does nothing, or None without a Slurm that answers."""
    if shutil.which("sbatch") is None or "UP" not in subprocess.run(["scontrol", "ping"], capture_output=True,
                                                                     text=True).stdout:
        return None
    return seconds(["sbatch", "--wait", "--quiet", "--output", "/dev/null", "--wrap", "true"])


def study_job_counts(study: Path, workdir: Path) -> tuple[dict[str, int], int]:
    """Jobs per rule of a study (but `all`), and its cluster jobs: the group jobs plus the ungrouped ones."""
    groups = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["groups"]
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                           "--configfile", str(study.resolve()), "-n", "--groups",
                           *(f"{rule}={group}" for rule, group in groups.items())],
                          capture_output=True, text=True, check=True)
    stats = done.stdout[done.stdout.index("Job stats:"):]
    jobs = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE)
            if rule not in ("all", "total")}
    ungrouped = [rule for rule in re.findall(r"^rule (\w+):", done.stdout, re.MULTILINE) if rule != "all"]
    return jobs, done.stdout.count("Group job ") + len(ungrouped)


def cpu_and_wall(command, cwd=None) -> tuple[float, float]:
    """The least wall-clock and the least CPU seconds (user + system) of ``command`` over FLOOR_REPEATS runs: what
    the machine's other work does (waiting, cache misses) only ever adds, so the least is the cost itself."""
    walls, cpus = [], []
    for _ in range(FLOOR_REPEATS):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(time.perf_counter() - start)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return min(walls), min(cpus)


def kept_job_scripts(workdir: Path) -> dict[str, Path]:
    """Run the default pipeline to its pooled tables at m = 2 in ``workdir``, keeping the scripts Snakemake wrote for
    its jobs; one script of each FLOOR_JOBS rule, by rule (an impute job, a fit job of an imputation, the pool job)."""
    (workdir / "m2.yaml").write_text("imputation: {m: 2}\n")
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                    "--configfile", str(workdir / "m2.yaml"), "--cores", "2", "--quiet", "--skip-script-cleanup",
                    "results/hsb/pooled/fixed_effects.csv"], check=True, capture_output=True)
    scripts = workdir / ".snakemake" / "scripts"
    return {rule: sorted(scripts.glob(f"*.{rule}.py"))[0] for rule in FLOOR_JOBS}


def job_floor(script: Path, reads_parquet: bool, workdir: Path) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of the job ``script`` (a kept job script, run again in ``workdir``) and of its parts: the
    interpreter, Snakemake's preamble, the floor (preamble and pandas), the job's imports, the whole job; and the
    modules the job imports beyond the floor, under "beyond"."""
    lines = script.read_text().splitlines(keepends=True)
    preamble, body = "".join(lines[:PREAMBLE_LINES]), "".join(lines[PREAMBLE_LINES:])
    loaded = workdir / f"{script.stem}.modules.json"
    variants = {
        "preamble": preamble,
        "floor": preamble + "import pandas\n" + ("import pyarrow.parquet\n" if reads_parquet else ""),
        "listed": preamble + "import atexit, json, sys\n"
                  f"atexit.register(lambda: json.dump(list(sys.modules), open({str(loaded)!r}, 'w')))\n" + body,
        "floor_listed": preamble + "import pandas\n" + ("import pyarrow.parquet\n" if reads_parquet else "")
                        + "import json, sys\nprint(json.dumps(list(sys.modules)))\n",
    }
    for name, text in variants.items():
        (workdir / f"{script.stem}.{name}.py").write_text(text)
    run = lambda name: [sys.executable, str(workdir / f"{script.stem}.{name}.py")]  # noqa: E731
    subprocess.run(run("listed"), cwd=workdir, check=True, capture_output=True)
    floor_modules = json.loads(subprocess.run(run("floor_listed"), cwd=workdir, check=True, capture_output=True,
                                              text=True).stdout)
    job_modules = json.loads(loaded.read_text())
    (workdir / f"{script.stem}.imports.py").write_text(
        preamble + "import importlib\n"
        f"for name in {job_modules!r}:\n"
        "    try:\n        importlib.import_module(name)\n    except Exception:  # an alias, not importable by name\n"
        "        pass\n")
    times = {"interpreter": cpu_and_wall([sys.executable, "-c", "pass"])}
    times |= {name: cpu_and_wall(run(name), cwd=workdir) for name in ("preamble", "floor", "imports")}
    times["job"] = cpu_and_wall([sys.executable, str(script)], cwd=workdir)
    return times | {"beyond": beyond_floor(job_modules, floor_modules)}


def beyond_floor(job_modules: list[str], floor_modules: list[str]) -> list[str]:
    """The packages a job imports that its floor does not: top-level ones (not the standard library's, not
    Snakemake's), and the subpackages of scipy and numpy (scipy's array-API layer imports numpy.f2py and
    numpy.testing)."""
    floor = {name.split(".")[0] for name in floor_modules} | set(sys.stdlib_module_names)
    new = set(job_modules) - set(floor_modules)
    packages = {name.split(".")[0] for name in new if not name.startswith(("_", "snakemake")) and
                name.split(".")[0] not in floor}
    parts = {".".join(name.split(".")[:2]) for name in new if name.startswith(("scipy.", "numpy."))
             and not name.split(".")[1].startswith("_")}
    return sorted(packages | parts)


def print_floors(floors: dict) -> None:
    """The per-job floor table: each FLOOR_JOBS job's parts, wall-clock and CPU seconds."""
    print(f"\nfloor of a job (wall s / CPU s, the least of {FLOOR_REPEATS} runs of the script Snakemake wrote for it):")
    print(f"{'':<48}" + "".join(f"{rule:>16}" for rule in floors))
    rows = [("interpreter start", lambda t: t["interpreter"]),
            ("Snakemake's preamble (unpickles `snakemake`)", lambda t: _less(t["preamble"], t["interpreter"])),
            ("pandas (+ pyarrow.parquet to read Parquet)", lambda t: _less(t["floor"], t["preamble"])),
            ("= the floor: interpreter, preamble, pandas", lambda t: t["floor"]),
            ("the job's imports, all told", lambda t: t["imports"]),
            ("above the floor: the step's libraries, mlmi", lambda t: _less(t["imports"], t["floor"])),
            ("the job's work (read, compute, write)", lambda t: _less(t["job"], t["imports"])),
            ("the whole job (its script, without Snakemake)", lambda t: t["job"])]
    for label, value in rows:
        print(f"{label:<48}" + "".join(f"{'%.2f / %.2f' % value(times):>16}" for times in floors.values()))
    for rule, times in floors.items():
        print(f"{rule} job: imported beyond the floor: {', '.join(times['beyond'])}")


def _less(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) of ``a`` less ``b``."""
    return a[0] - b[0], a[1] - b[1]


def print_overheads(study: Path, tmp: Path) -> None:
    """Each job's start-up (process, preamble, its stage's imports), Snakemake's and Slurm's, and their sum over the
    jobs of ``study``, locally and on Slurm."""
    (tmp / "trivial").mkdir()
    start = seconds([sys.executable, "-c", "pass"])
    stages = import_seconds("mlmi.run.stages", start)
    imports = {module: import_seconds(module, start) for module in sorted(set(RULE_MODULES.values()))}
    everything = import_seconds(", ".join(imports), start)
    trivial = trivial_job_seconds(tmp / "trivial")
    snakemake = snakemake_start_seconds(tmp)
    round_trip = slurm_round_trip_seconds()
    jobs, cluster_jobs = study_job_counts(study, tmp)

    print(f"interpreter start                       {start:6.2f} s")
    print(f"import mlmi.run.stages                      {stages:6.2f} s")
    print(f"import every module a stage uses        {everything:6.2f} s   (what each job paid before stages "
          "imported lazily)")
    for module, cost in imports.items():
        rules = ", ".join(rule for rule, name in RULE_MODULES.items() if name == module)
        print(f"  import {module:<32} {cost:6.2f} s   ({rules})")
    print(f"trivial script job under Snakemake      {trivial:6.2f} s")
    print(f"Snakemake start-up on mlmi (DAG)        {snakemake:6.2f} s")
    print("Slurm round trip (sbatch --wait true)   " + (f"{round_trip:6.2f} s" if round_trip else "  n/a (no Slurm)"))
    n = sum(jobs.values())
    local = sum(count * (trivial + imports[RULE_MODULES[rule]]) for rule, count in jobs.items())
    every_module = n * (trivial + everything)
    print(f"\n{study.name}: {n} jobs; grouped by profiles/slurm: {cluster_jobs} cluster jobs")
    print(f"start-up of the jobs, local run: {local / 3600:.1f} h ({local / n:.2f} s a job: trivial job + its imports;"
          f" {every_module / 3600:.1f} h if every job imported every module)")
    print(f"on Slurm, + Snakemake start-up in the cluster job and in each job inside it (srun python -m snakemake):"
          f" {(local + (n + cluster_jobs) * snakemake) / 3600:.1f} h grouped, {(local + 2 * n * snakemake) / 3600:.1f}"
          " h ungrouped")
    if round_trip:
        print(f"scheduling round trips: {n} x {round_trip:.1f} s = {n * round_trip / 3600:.1f} h ungrouped, "
              f"{cluster_jobs} x {round_trip:.1f} s = {cluster_jobs * round_trip / 3600:.2f} h grouped "
              "(an idle one-node cluster: a busy one queues each job for longer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", default=REPO / "config" / "studies" / "realistic.yaml", type=Path,
                        help="the study whose jobs are counted (default: config/studies/realistic.yaml)")
    parser.add_argument("--floor-only", action="store_true",
                        help="measure only the floor of an impute, a fit and the pool job")
    args = parser.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.floor_only:
            print_overheads(args.study, tmp)
        (tmp / "floor").mkdir()
        floors = {rule: job_floor(script, FLOOR_JOBS[rule], tmp / "floor")
                  for rule, script in kept_job_scripts(tmp / "floor").items()}
    print_floors(floors)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
