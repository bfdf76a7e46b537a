"""Measure what every Snakemake job pays before it does any work, and what grouping saves on a cluster.

usage: python benchmarks/job_overhead.py [STUDY_CONFIG]   (default: config/studies/realistic.yaml)

Prints the median over a few repeats of: the interpreter's start; the imports of a job script
(mlmi.run.stages, and the module each rule's stage imports when it runs); a trivial `script:` job run by Snakemake
(a process, Snakemake's script preamble); Snakemake's start-up on this workflow (parse and DAG,
which every cluster job pays, and, with profiles/slurm, every job inside a group too, since the
plugin runs each as `srun python -m snakemake ...`); a Slurm round trip (`sbatch --wait` of a job
that does nothing), when Slurm answers. Then it counts the study's jobs with and without the
profile's grouping (a dry run) and puts the figures together.
"""
import re
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
RULE_MODULES = {"simulate": "mlmi.data.simulate", "ampute": "mlmi.data.ampute", "impute": "mlmi.impute.miceforest",
                "fit": "mlmi.fit.lmer", "fit_listwise": "mlmi.fit.lmer", "fit_complete": "mlmi.fit.lmer",
                "pool": "mlmi.pool.rubin", "replication": "mlmi.run.study", "study_summary": "mlmi.report.study_report",
                "report": "mlmi.report.run_report"}
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


def main() -> None:
    study = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "config" / "studies" / "realistic.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
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
    print(f"Slurm round trip (sbatch --wait true)   " + (f"{round_trip:6.2f} s" if round_trip else "  n/a (no Slurm)"))
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


if __name__ == "__main__":
    main()
