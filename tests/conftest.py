"""Shared by every test: inputs are only read. No test may change a byte or a modification time
of the files the suite reads from the repository (checked around the whole session and around
each test), and ``untouched`` lets a test check the same of the user files it makes itself."""
import contextlib
from pathlib import Path

import pytest

from mlmi.run.provenance import sha256

REPO = Path(__file__).resolve().parents[1]
#: What the suite reads from the repository and beside it (folders are walked).
READ_ONLY = (REPO / "config", REPO / "tests" / "data", REPO / "README.md",
             REPO.parent / "shared" / "reference", REPO.parent / "shared" / "checks")


def fingerprint(paths) -> dict:
    """sha256 and modification time (ns) of every file in ``paths``, folders walked."""
    files = [found for path in map(Path, paths)
             for found in (sorted(path.rglob("*")) if path.is_dir() else [path]) if found.is_file()]
    return {str(file): (sha256(file), file.stat().st_mtime_ns) for file in files}


@contextlib.contextmanager
def untouched_files(*paths, during="this block"):
    """Fail if the block changes the bytes or modification time of a file in ``paths``, or adds or removes one."""
    before = fingerprint(paths)
    yield
    after = fingerprint(paths)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changed, f"input files changed during {during} (bytes, modification time, added or removed): {changed}"


@pytest.fixture(scope="session", autouse=True)
def repository_inputs_only_read():
    """Over the whole session, module fixtures' workflow runs included."""
    with untouched_files(*READ_ONLY, during="the test session"):
        yield


@pytest.fixture(autouse=True)
def repository_inputs_only_read_by_each_test():
    """Around each test, so a change is pinned on the test that made it."""
    with untouched_files(*READ_ONLY, during="this test"):
        yield


@pytest.fixture
def untouched():
    """``with untouched(path, folder, ...):`` fails the test if the block changes any of those files."""
    return untouched_files
