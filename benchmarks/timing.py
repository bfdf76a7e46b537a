"""Timing a call the way mlmi's benchmarks beside R report it: wall clock and CPU seconds per repeat."""
import argparse
import contextlib
import subprocess
import tempfile
import time
from pathlib import Path


def timed(call, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds of each of ``repeats`` calls of ``call()``, and what the last one returned (CPU
    time too, since the machine may be shared)."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = call()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return walls, cpus, result


def repeats_argument(doc: str) -> int:
    """The ``--repeats`` of a benchmark's command line (3 by default); ``doc``'s first line is its help."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args().repeats


@contextlib.contextmanager
def r_run(script: Path, *args: str):
    """Run ``Rscript script FOLDER *args`` with a temporary FOLDER for what it writes, and yield that folder
    (removed afterwards)."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["Rscript", str(script), folder, *args], check=True, capture_output=True)
        yield Path(folder)
