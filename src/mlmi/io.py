"""Read and write the pipeline's files: Parquet data sets, JSON records, CSV tables.

Writes go to a temporary file renamed into place, so an interrupted job never leaves a
half-written output that a resumed run would take for finished.
"""
import json
import os
import tempfile
from pathlib import Path

import pandas as pd


def _atomic(path, write) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_parquet(data: pd.DataFrame, path) -> None:
    """Write a data set to Parquet, dtypes (nullable integers too) kept."""
    _atomic(path, lambda tmp: data.to_parquet(tmp, index=False))


def read_parquet(path) -> pd.DataFrame:
    """Read a data set written by ``write_parquet``."""
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


def write_csv(table: pd.DataFrame, path) -> None:
    """Write a table as CSV with a header and no index."""
    _atomic(path, lambda tmp: table.to_csv(tmp, index=False))
