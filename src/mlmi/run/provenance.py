"""What a run was: config as run, seeds, versions, checksums, so it can be re-run and verified.

``describe_run`` is what the report shows; ``write_provenance`` adds the checksums of every
output and writes ``provenance.json`` (design §4).
"""
import csv
import hashlib
import importlib.metadata
import platform
import sys
from pathlib import Path

from mlmi.run import io
from mlmi.run.seeds import STAGES, int_seed_for

#: The packages whose versions decide the numbers (pyproject.toml pins them).
PACKAGES = ("mlmi", "snakemake", "nlopt", "statsmodels", "formulaic", "miceforest", "lightgbm", "numpy", "scipy", "pandas",
            "pyarrow", "matplotlib", "PyYAML", "jsonschema", "threadpoolctl")


def sha256(path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seeds(master: int, m: int) -> dict:
    """The master seed and the seed each job derives from it (``mlmi.run.seeds``)."""
    return {"master": master,
            "derivation": "numpy.random.SeedSequence(entropy=master, spawn_key=(stage, k)); "
                          "the numbers below are its first 32-bit word",
            **{stage: int_seed_for(master, stage) for stage in STAGES if stage != "impute"},
            "impute": {str(k): int_seed_for(master, "impute", k) for k in range(1, m + 1)}}


def versions() -> dict:
    """Python, platform and the versions of the packages that decide the numbers."""
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": {name: importlib.metadata.version(name) for name in PACKAGES}}


def run_seconds(benchmarks) -> float:
    """Sum of the jobs' wall-clock seconds from Snakemake's benchmark files of this run's jobs.

    ``benchmarks`` lists the files of the jobs of the run being described, never a folder's
    every file: an earlier run in the same folder (with a larger m, say) leaves files of jobs
    that are not this run's. A listed file that does not exist (yet) counts 0 s.
    """
    return float(sum(_seconds(tsv) for tsv in map(Path, benchmarks) if tsv.is_file()))


def _seconds(tsv: Path) -> float:
    """The ``s`` column (wall-clock seconds) of a benchmark file's first row, read with the csv module: the job that
    writes the provenance record then imports no pandas (0.4 s, more than the rest of it)."""
    with open(tsv, newline="") as stream:
        return float(next(csv.DictReader(stream, delimiter="\t"))["s"])


def describe_run(config: dict, m: int, inputs, benchmarks) -> dict:
    """Config as run, seeds, versions, input checksums and run time (``run_seconds`` of ``benchmarks``):
    the report's provenance."""
    return {"config": config, "seeds": seeds(config["seed"], m), "versions": versions(),
            "inputs": {str(path): sha256(path) for path in inputs}, "run_seconds": run_seconds(benchmarks)}


def write_provenance(path, *, config: dict, m: int, inputs, outputs, benchmarks) -> None:
    """Write provenance.json: ``describe_run`` plus the checksum of every output."""
    record = describe_run(config, m, inputs, benchmarks)
    record["outputs"] = {str(output): sha256(output) for output in outputs}
    io.write_json(record, path)


def verify(results) -> tuple[list[str], int]:
    """Re-hash every input and output listed in ``results``/provenance.json.

    Returns the differences (one line each: a file missing or changed) and the number of
    files checked. Relative paths are read from the working directory of the run, the folder
    that holds ``results/``.
    """
    folder = Path(results)
    record_path = folder / "provenance.json"
    if not record_path.is_file():
        raise FileNotFoundError(f"{record_path}: no provenance record; is {folder} a finished mlmi results folder?")
    record = io.read_json(record_path)
    workdir = folder.resolve().parents[1]
    differences, checked = [], 0
    for kind in ("inputs", "outputs"):
        for name, digest in record[kind].items():
            path = Path(name) if Path(name).is_absolute() else workdir / name
            checked += 1
            if not path.is_file():
                differences.append(f"{kind[:-1]} {name}: missing")
            elif sha256(path) != digest:
                differences.append(f"{kind[:-1]} {name}: changed since the run (sha256 {sha256(path)[:12]}…, "
                                   f"recorded {digest[:12]}…)")
    return differences, checked
