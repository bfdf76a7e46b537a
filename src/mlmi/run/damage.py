"""Parquet files that cannot be read: found cheaply, named in one line, and mlmi's own remade.

A Parquet file starts and ends with the 4 bytes ``PAR1``; before the last 4 are the length of its
footer and the footer itself, which pyarrow reads first. A file cut short (a full disk, a copy
stopped half-way) loses its end, so a reader fails on it with a traceback about magic bytes. mlmi
checks its own outputs under ``results/<scenario>/`` when a run starts and removes the damaged
ones, so that Snakemake makes them (and what depends on them) again, instead of failing in the
same job on every rerun; a damaged file the user gave is a one-line error (``mlmi.run.inputs``).
"""
import os
from pathlib import Path

#: The marker at both ends of every Parquet file.
MAGIC = b"PAR1"
#: The smallest Parquet file: the marker, a 4-byte footer length and the marker again (and a footer).
SMALLEST = 12


class DamagedFile(ValueError):
    """A Parquet output of mlmi that cannot be read; the message names it and what to do."""


def parquet_problem(path) -> str | None:
    """Why ``path`` is not a readable Parquet file, in a few words; None when pyarrow can read its footer."""
    size = os.path.getsize(path)
    if size < SMALLEST:
        return f"{size} bytes, fewer than the {SMALLEST} of the smallest Parquet file"
    with open(path, "rb") as stream:
        head = stream.read(len(MAGIC))
        stream.seek(-len(MAGIC), os.SEEK_END)
        tail = stream.read(len(MAGIC))
    if head != MAGIC:
        return "it does not start with Parquet's marker 'PAR1'"
    if tail != MAGIC:
        return "it does not end with Parquet's marker 'PAR1': cut short?"
    import pyarrow
    import pyarrow.parquet

    try:
        pyarrow.parquet.read_metadata(path)
    except (pyarrow.ArrowException, OSError, ValueError) as error:
        return f"its footer cannot be read: {str(error).strip().splitlines()[0]}"
    return None


def remove_damaged(folder) -> dict[str, str]:
    """Remove every unreadable ``*.parquet`` under ``folder`` (mlmi's own outputs, never a user's file);
    return each one's path with a line saying it will be made again."""
    said = {}
    for path in sorted(Path(folder).rglob("*.parquet")) if Path(folder).is_dir() else []:
        problem = parquet_problem(path)
        if problem:
            path.unlink()
            said[str(path)] = f"{path} was damaged ({problem}); it will be made again"
    return said
