"""Parquet files that cannot be read: found cheaply and named in one line.

A Parquet file starts and ends with the 4 bytes ``PAR1``; before the last 4 are the length of its
footer and the footer itself, which pyarrow reads first. A file cut short (a full disk, a copy
stopped half-way) loses its end, so a reader fails on it with a traceback about magic bytes; a
damaged file the user gave is a one-line error instead (``mlmi.inputs``).
"""
import os

#: The marker at both ends of every Parquet file.
MAGIC = b"PAR1"
#: The smallest Parquet file: the marker, a 4-byte footer length and the marker again (and a footer).
SMALLEST = 12


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

