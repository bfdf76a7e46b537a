"""provenance.json: checksums, seeds and versions of a run."""
import json

from mlmi.run.provenance import describe_run, sha256, write_provenance
from mlmi.run.seeds import int_seed_for


def test_sha256_of_known_bytes(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")     # FIPS 180-2 test vector
    assert sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_record_has_config_seeds_versions_checksums(tmp_path):
    (tmp_path / "in.csv").write_text("x\n1\n")
    (tmp_path / "out.csv").write_text("y\n2\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "a.tsv").write_text("s\th:m:s\n1.5\t0:00:01\n")
    (tmp_path / "bench" / "b.tsv").write_text("s\th:m:s\n2.25\t0:00:02\n")
    (tmp_path / "bench" / "stale.tsv").write_text("s\th:m:s\n100\t0:01:40\n")     # an earlier run's job
    config = {"seed": 7, "scenario": "t"}
    benchmarks = [tmp_path / "bench" / name for name in ("a.tsv", "b.tsv", "not_yet.tsv")]
    write_provenance(tmp_path / "p.json", config=config, m=3, inputs=[tmp_path / "in.csv"],
                     outputs=[tmp_path / "out.csv"], benchmarks=benchmarks)
    record = json.loads((tmp_path / "p.json").read_text())
    assert record["config"] == config and record["run_seconds"] == 3.75
    assert record["seeds"]["impute"] == {str(k): int_seed_for(7, "impute", k) for k in (1, 2, 3)}
    assert record["inputs"] == {str(tmp_path / "in.csv"): sha256(tmp_path / "in.csv")}
    assert record["outputs"] == {str(tmp_path / "out.csv"): sha256(tmp_path / "out.csv")}
    assert record["versions"]["packages"]["statsmodels"] == __import__("statsmodels").__version__
    assert "outputs" not in describe_run(config, 3, [], [])


def finished_run(tmp_path, monkeypatch):
    """A results folder with one input outside it, one output, and their provenance record,
    written from the run's working directory as Snakemake does."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("x\n1\n")
    results = tmp_path / "results" / "s"
    results.mkdir(parents=True)
    (results / "out.csv").write_text("y\n2\n")
    write_provenance(results / "provenance.json", config={"seed": 1}, m=2, inputs=[str(tmp_path / "data.csv")],
                     outputs=["results/s/out.csv"], benchmarks=[])
    return results


def test_verify_passes_untouched_and_catches_one_changed_byte(tmp_path, capsys, monkeypatch):
    from mlmi.cli import main
    from mlmi.run.provenance import verify

    results = finished_run(tmp_path, monkeypatch)
    monkeypatch.chdir("/")                                           # verify works from anywhere
    assert verify(results) == ([], 2) and main(["verify", str(results)]) == 0
    (results / "out.csv").write_bytes(b"y\n3\n")                     # one byte of an output
    differences, _ = verify(results)
    assert len(differences) == 1 and differences[0].startswith("output results/s/out.csv: changed")
    (results / "out.csv").write_text("y\n2\n")
    (tmp_path / "data.csv").write_bytes(b"x\n0\n")                   # one byte of an input
    assert verify(results)[0][0].startswith(f"input {tmp_path / 'data.csv'}: changed")
    assert main(["verify", str(results)]) == 1
    (results / "out.csv").unlink()
    assert "output results/s/out.csv: missing" in verify(results)[0]
    assert main(["verify", str(tmp_path)]) == 2 and "no provenance record" in capsys.readouterr().err
