"""Faults: `kill -9` of the whole run at random moments, then `snakemake --rerun-incomplete`, gives the
results of a run never interrupted; a killed write never leaves a truncated file under an output's name."""
import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mlmi.run import io
from test_workflow import TINY, estimates, snakemake_command

CONFIG = {**TINY, "imputation": {"m": 3, "iterations": 2}}
KILLS = 4
KILL_SEED = 20261124
#: How a whole file of each kind reads, or ends.
READERS = {".parquet": pd.read_parquet, ".csv": pd.read_csv, ".json": lambda path: json.loads(path.read_text())}
ENDINGS = {".png": b"IEND\xaeB`\x82", ".html": b"</html>\n"}


def attempt(command: list[str], log: Path, kill_after: float = 600) -> int | None:
    """Run ``command`` as its own process group; SIGKILL the whole group after ``kill_after`` s (then None)."""
    with open(log, "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return run.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            return None


def marked_incomplete(workdir: Path) -> list[Path]:
    """The outputs Snakemake marked as being made when the run was killed (its .snakemake/incomplete)."""
    markers = workdir / ".snakemake" / "incomplete"
    return [workdir / base64.urlsafe_b64decode(marker.name).decode() for marker in markers.glob("*")]


def assert_whole(results: Path) -> None:
    """Every file under an output's name is complete: it parses, or ends as its format ends."""
    for path in results.rglob("*"):
        if path.name.startswith("."):  # a killed write's temporary file, under no output's name
            continue
        if path.suffix in ENDINGS:
            assert path.read_bytes().endswith(ENDINGS[path.suffix]), f"{path} is truncated after a kill"
        elif path.suffix in READERS:
            try:
                READERS[path.suffix](path)
            except Exception as error:
                pytest.fail(f"{path} is truncated or damaged after a kill: {error!r}")


def assert_same_results(clean: Path, resumed: Path) -> None:
    """Data, imputations and pooled tables byte for byte; fits apart from their timing; the report made."""
    for folder in ("data", "imputations", "pooled"):
        names = sorted(path.name for path in (clean / folder).iterdir())
        assert names == sorted(path.name for path in (resumed / folder).iterdir()), folder
        for name in names:
            assert (clean / folder / name).read_bytes() == (resumed / folder / name).read_bytes(), f"{folder}/{name}"
    fits = sorted(path.name for path in (clean / "fits").glob("*.json"))
    assert fits == sorted(path.name for path in (resumed / "fits").glob("*.json"))
    for name in fits:
        assert estimates(clean / "fits" / name) == estimates(resumed / "fits" / name), name
    assert (resumed / "report.html").read_text().endswith("</html>\n") and (resumed / "provenance.json").is_file()
    assert sorted(path.name for path in (resumed / "figures").glob("*.png")) == sorted(
        path.name for path in (clean / "figures").glob("*.png"))


def test_killed_at_random_moments_the_run_resumes_to_the_clean_results(tmp_path, untouched):
    clean_log, started = tmp_path / "clean.log", time.monotonic()
    assert attempt(snakemake_command(tmp_path / "clean", CONFIG), clean_log) == 0, clean_log.read_text()[-3000:]
    duration = time.monotonic() - started
    workdir = tmp_path / "killed"
    command = snakemake_command(workdir, CONFIG, extra=["--rerun-incomplete"])  # what the user types, nothing more
    results = workdir / "results" / "tiny"
    rng, interrupted = random.Random(KILL_SEED), []
    with untouched(workdir / "extra.yaml"):
        for kill in range(KILLS + 1):
            log, last = tmp_path / f"attempt_{kill}.log", kill == KILLS
            stale = any((workdir / ".snakemake" / "locks").glob("*"))
            # Kill points spread over the run: a seeded fraction of a clean run's time into each attempt.
            code = attempt(command, log, 600 if last else rng.uniform(0.1, 0.35) * duration)
            said = log.read_text()
            assert code == 0 if last else code in (None, 0), f"attempt {kill} ended with {code}:\n{said[-3000:]}"
            if stale and "localrule" in said:  # it got past Snakemake's lock check: the dead run's lock was freed
                assert "mlmi: removed the lock" in said, said[-3000:]
            if code is None:
                assert_whole(results)
                interrupted.append((time.time_ns(), marked_incomplete(workdir)))
    assert len(interrupted) >= KILLS - 1, f"only {len(interrupted)} kills came before the run finished"
    assert any(outputs for _, outputs in interrupted), f"no kill landed while a job ran: {interrupted}"
    for killed_at, outputs in interrupted:  # what a killed job left was made again, never taken as finished
        for output in outputs:
            assert output.stat().st_mtime_ns > killed_at, f"{output} was kept from a killed job"
    assert_same_results(tmp_path / "clean" / "results" / "tiny", results)
    assert not [path for path in results.rglob(".*")], "temporary files left in results/"
    assert not (workdir / ".snakemake" / "incomplete").exists() or not any(
        (workdir / ".snakemake" / "incomplete").iterdir())


STALLED_WRITE = """
import sys, time
import pandas as pd
from mlmi.run import io

def stall(self, path, **kwargs):
    with open(path, "w") as stream:
        stream.write("term,estim")
    print("writing", flush=True)
    time.sleep(300)

pd.DataFrame.to_csv = stall
io.write_csv(pd.DataFrame({"term": ["ses"]}), sys.argv[1])
"""


def test_a_write_killed_midway_leaves_the_output_whole_and_its_leftover_is_cleared(tmp_path):
    target = tmp_path / "fixed_effects.csv"
    table = pd.DataFrame({"term": ["(Intercept)", "ses"], "estimate": [1.5, 2.0]})
    io.write_csv(table, target)
    before = target.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", STALLED_WRITE, str(target)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert writer.stdout.readline() == "writing\n"
    os.killpg(writer.pid, signal.SIGKILL)
    writer.wait()
    assert target.read_bytes() == before  # the earlier whole file, never the half-written one
    [leftover] = tmp_path.glob(".*")
    assert leftover.name.startswith(".fixed_effects.csv.") and leftover.name.endswith(io.PARTIAL)
    assert leftover.read_text() == "term,estim"
    io.write_csv(table.assign(estimate=[1.5, 2.5]), target)
    assert pd.read_csv(target)["estimate"].tolist() == [1.5, 2.5]
    assert not list(tmp_path.glob(".*"))


#: A run's start in a process of its own: release_stale_lock's answer, then alive for 300 s when asked to hold.
RUN_START = """
import sys, time
from mlmi.run import io
print(io.release_stale_lock(sys.argv[1]), flush=True)
if sys.argv[2] == "hold":
    time.sleep(300)
"""


def start_run(folder, hold: bool) -> tuple[subprocess.Popen, str]:
    """A process that starts as a run in ``folder`` does; its release_stale_lock answer ("True"/"False")."""
    run = subprocess.Popen([sys.executable, "-c", RUN_START, str(folder), "hold" if hold else "once"],
                           stdout=subprocess.PIPE, text=True)
    return run, run.stdout.readline().strip()


def test_a_live_runs_lock_stands_and_a_killed_runs_lock_is_released(tmp_path):
    first, said = start_run(tmp_path, hold=True)
    second = None
    try:
        assert said == "False"
        locks = tmp_path / ".snakemake" / "locks"
        locks.mkdir()
        (locks / "0.output.lock").write_text("results/tiny/pooled/fixed_effects.csv\n")
        second, said = start_run(tmp_path, hold=True)    # a second run beside the first: both alive
        assert said == "False" and (locks / "0.output.lock").exists()
        first.kill()  # SIGKILL, as a killed run gets
        first.wait()
        assert start_run(tmp_path, hold=False)[1] == "False" and (locks / "0.output.lock").exists(), \
            "the lock was taken while the second run is still alive"
    finally:
        for run in (first, second):
            if run is not None:
                run.kill()
                run.wait()
    assert start_run(tmp_path, hold=False)[1] == "True" and not locks.exists()
