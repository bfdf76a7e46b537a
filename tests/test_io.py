"""mlmi.run.io: every file mlmi writes is readable as the user's umask says, not only by its owner."""
import os
import stat

import pandas as pd
import pytest

from mlmi.run import io

#: One write of each kind mlmi makes: Parquet data, JSON records, CSV tables, HTML pages, PNG figures.
WRITERS = {
    "data.parquet": lambda path: io.write_parquet(pd.DataFrame({"x": [1.0, 2.0]}), path),
    "record.json": lambda path: io.write_json({"a": 1}, path),
    "table.csv": lambda path: io.write_csv(pd.DataFrame({"x": [1]}), path),
    "report.html": lambda path: io.write_text("<!DOCTYPE html>", path),
    "figure.png": lambda path: io.write_bytes(b"\x89PNG", path),
}


@pytest.fixture
def umask():
    """Set the process's umask for one test, and restore it after."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize("name", WRITERS)
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask, mask, mode, name):
    umask(mask)
    path = tmp_path / "out" / name
    WRITERS[name](path)
    WRITERS[name](path)                     # rewritten over an existing output too
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in path.parent.iterdir()] == [name]        # no temporary file left
