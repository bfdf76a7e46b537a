"""Read and write the pipeline's files: Parquet data sets, JSON records, CSV tables, pages.

Writes go to a temporary file renamed into place, so an interrupted job never leaves a
half-written output that a resumed run would take for finished; the leftover temporary file
of a killed write is removed when the output is written again. Outputs get the mode the user's
umask gives a new file (0644 under umask 022), so colleagues on a shared server can read
them. ``release_stale_lock`` lets a
run killed with SIGKILL resume without ``snakemake --unlock``.
"""
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from mlmi.run.damage import DamagedFile, parquet_problem

if TYPE_CHECKING:  # pandas is imported where a table is read: a job that writes only JSON (provenance) needs none
    import pandas as pd

#: Ends the name of every temporary file a write makes beside its output (``.<name>.<random>.partial``).
PARTIAL = ".partial"

#: The open file whose flock marks this process as the live run of its working directory.
_ALIVE = []


def _new_partial(path: Path) -> str:
    """Create the empty temporary file of a write of ``path``, beside it, and return its name.

    Made with mode 0666 less the umask, as ``open()`` makes any new file; the writers only refill
    it, so the output keeps that mode (``tempfile.mkstemp`` would make it 0600, unreadable to others).
    """
    tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex}{PARTIAL}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def _atomic(path, write) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.name}.*{PARTIAL}"):  # a killed earlier write of this output
        leftover.unlink(missing_ok=True)
    tmp = _new_partial(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_parquet(data: "pd.DataFrame", path) -> None:
    """Write a data set to Parquet, dtypes (nullable integers too) kept."""
    _atomic(path, lambda tmp: data.to_parquet(tmp, index=False))


def read_parquet(path) -> "pd.DataFrame":
    """Read a data set written by ``write_parquet``; a damaged one is a ``DamagedFile`` error naming it."""
    problem = parquet_problem(path)
    if problem:
        raise DamagedFile(f"{path} is damaged ({problem}); run snakemake again: it removes damaged outputs and "
                          "makes them again")
    import pandas as pd

    return pd.read_parquet(path)


def write_json(record: dict, path) -> None:
    """Write a record as indented JSON (floats round-trip exactly)."""
    def write(tmp):
        with open(tmp, "w") as stream:
            json.dump(record, stream, indent=1, allow_nan=True)
            stream.write("\n")
    _atomic(path, write)


def read_json(path) -> dict:
    """Read a JSON record."""
    with open(path) as stream:
        return json.load(stream)


def write_csv(table: "pd.DataFrame", path) -> None:
    """Write a table as CSV with a header and no index."""
    _atomic(path, lambda tmp: table.to_csv(tmp, index=False))


def write_text(text: str, path) -> None:
    """Write a text file (an HTML page) in UTF-8."""
    _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bytes(content: bytes, path) -> None:
    """Write a binary file (a PNG figure)."""
    _atomic(path, lambda tmp: Path(tmp).write_bytes(content))


def release_stale_lock(workdir=".") -> bool:
    """Remove Snakemake's lock when no live run holds this folder, so a killed run resumes without --unlock.

    Every run holds a shared flock on ``.snakemake/mlmi.alive`` for as long as its process exists
    (the kernel drops it however the process ends, SIGKILL included). A run that gets the flock
    exclusively is the only one alive in the folder, so a lock in ``.snakemake/locks`` is then a
    dead run's; it removes it and keeps a shared flock like every other run. Called once per process.
    Where the file system cannot flock, nothing is removed and Snakemake's own lock check stands;
    runs on two hosts sharing a folder see each other's flock where the file system shares locks.
    """
    state = Path(workdir) / ".snakemake"
    state.mkdir(exist_ok=True)
    alive = open(state / "mlmi.alive", "a")
    try:
        fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another run is alive here: its lock is not stale
        stale = False
    except OSError:  # no flock on this file system
        alive.close()
        return False
    else:
        locks = state / "locks"
        stale = locks.is_dir() and any(locks.iterdir())
        shutil.rmtree(locks, ignore_errors=True)
    fcntl.flock(alive, fcntl.LOCK_SH)  # this run is alive, as long as its process (waits out another's check)
    _ALIVE.append(alive)
    return stale
