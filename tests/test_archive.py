"""Archival reproduction (issue 8): the committed workflow, packed by `snakemake --archive`, unpacked
into a new folder and installed into a new virtual environment from requirements.lock, re-runs the
default pipeline to the same bytes as the same sources run in the current environment.

The README's "Reproducing an analysis" gives these steps as commands; this test runs them.
It takes about two minutes: two default runs, and pip installing the lock (from its cache or index).
"""
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mlmi.run import io
from mlmi.run.provenance import verify

REPO = Path(__file__).resolve().parents[1]
SCENARIO = "results/hsb"


def run(command, cwd, env=None) -> subprocess.CompletedProcess:
    """Run ``command`` in ``cwd``; fail the test with the end of its output if it fails."""
    command = [str(part) for part in command]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{' '.join(command)} in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def environment(src=None, venv=None) -> dict:
    """This environment without Python overrides, then ``src`` first on the import path or ``venv``'s Python."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if src:
        env["PYTHONPATH"] = str(src)
    if venv:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A clean clone of HEAD: what is committed, as CI checks it out (uncommitted work is left out)."""
    if not (REPO / ".git").exists():
        pytest.skip(f"{REPO} is not a git repository; snakemake --archive packs what git tracks")
    target = tmp_path_factory.mktemp("published") / "mlmi"
    run(["git", "clone", "--quiet", REPO, target], cwd=target.parent)
    return target


@pytest.fixture(scope="module")
def archive(clone) -> Path:
    """`snakemake --archive`, run in the clone as its README says (with the clone's src/ in this environment)."""
    path = clone.parent / "mlmi-archive.tar.gz"
    run([sys.executable, "-m", "snakemake", "--archive", path], cwd=clone, env=environment(src=clone / "src"))
    return path


@pytest.fixture(scope="module")
def baseline(clone, tmp_path_factory) -> Path:
    """The default pipeline from the clone's sources (its Snakefile and its src/) in this environment."""
    workdir = tmp_path_factory.mktemp("current")
    run([sys.executable, "-m", "snakemake", "-s", clone / "Snakefile", "-d", workdir, "--cores", 2],
        cwd=workdir, env=environment(src=clone / "src"))
    return workdir / SCENARIO


@pytest.fixture(scope="module")
def reproduced(archive, tmp_path_factory) -> tuple[Path, Path]:
    """Years later: the archive unpacked into a new folder, a new venv from the lock, the default run there."""
    root = tmp_path_factory.mktemp("years_later")
    folder, venv = root / "mlmi", root / "venv"
    folder.mkdir()
    run(["tar", "-xzf", archive, "-C", folder], cwd=root)
    run([sys.executable, "-m", "venv", venv], cwd=root)
    env = environment(venv=venv)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    run([*pip, "-r", "requirements.lock"], cwd=folder, env=env)
    run([*pip, "--no-deps", "."], cwd=folder, env=env)
    run([venv / "bin" / "python", "-m", "snakemake", "--cores", 2], cwd=folder, env=env)
    return folder, venv


def test_archive_holds_exactly_what_git_tracks(clone, archive):
    with tarfile.open(archive) as packed:
        names = {member.name for member in packed.getmembers() if member.isfile()}
    tracked = set(run(["git", "ls-files"], cwd=clone).stdout.split())
    assert names == tracked, (f"in the archive, untracked: {sorted(names - tracked)}; "
                              f"tracked, not archived: {sorted(tracked - names)}")
    assert {"Snakefile", "requirements.lock", "pyproject.toml", "config/config.yaml", "src/mlmi/pool/rubin.py"} <= names


def test_rerun_from_the_archive_gives_byte_identical_pooled_tables(reproduced, baseline):
    folder, _ = reproduced
    again = {table.name: table.read_bytes() for table in (folder / SCENARIO / "pooled").glob("*.csv")}
    before = {table.name: table.read_bytes() for table in (baseline / "pooled").glob("*.csv")}
    assert sorted(again) == sorted(before) and "fixed_effects.csv" in again
    assert [name for name in sorted(before) if again[name] != before[name]] == []


def test_rerun_ran_on_the_locked_versions_and_verifies(reproduced):
    folder, venv = reproduced
    record = io.read_json(folder / SCENARIO / "provenance.json")
    locked = set((folder / "requirements.lock").read_text().split())
    packages = record["versions"]["packages"]
    assert {f"{name}=={version}" for name, version in packages.items() if name != "mlmi"} <= locked
    assert record["versions"]["python"] == platform.python_version()
    assert list(record["inputs"]) == ["config/config.yaml"]   # inside the folder: recorded relative to it
    files = len(record["inputs"]) + len(record["outputs"])
    checked = run([venv / "bin" / "mlmi", "verify", SCENARIO], cwd=folder, env=environment(venv=venv))
    assert f"mlmi verify: 0 of {files} files differ" in checked.stdout
    moved = shutil.copytree(folder, folder.with_name(folder.name + "-moved"), symlinks=True)
    checked = run([venv / "bin" / "mlmi", "verify", SCENARIO], cwd=moved, env=environment(venv=venv))
    assert f"mlmi verify: 0 of {files} files differ" in checked.stdout, "a moved folder no longer verifies"


def test_verify_catches_one_changed_byte_in_every_input_and_output(baseline):
    """On a real run: flip one bit of each recorded file in turn; verify names that file alone."""
    record = io.read_json(baseline / "provenance.json")
    workdir = baseline.parents[1]
    assert verify(baseline) == ([], len(record["inputs"]) + len(record["outputs"]))
    for kind in ("input", "output"):
        for name in record[f"{kind}s"]:
            path = workdir / name                           # an absolute name stays itself
            original = path.read_bytes()
            middle = len(original) // 2
            path.write_bytes(original[:middle] + bytes([original[middle] ^ 1]) + original[middle + 1:])
            try:
                differences, _ = verify(baseline)
            finally:
                path.write_bytes(original)
            assert len(differences) == 1 and differences[0].startswith(f"{kind} {name}: changed"), differences
    assert verify(baseline)[0] == []
