"""A tiny sensitivity study through Snakemake: layout, summary, and incremental re-runs."""
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_workflow import finished, run_workflow

REPO = Path(__file__).resolve().parents[1]

STUDY = {"scenario": "tiny_study", "data": {"simulate": {"n_schools": 15}}, "imputation": {"m": 2, "iterations": 1},
         "study": {"replications": 2, "grid": {"missingness.mechanism": ["MCAR", "MNAR"]}}}
COLUMNS = ["scenario", "method", "term", "n_reps", "mean_estimate", "bias", "rel_bias", "emp_se", "model_se", "rmse",
           "coverage", "width", "fmi"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    return workdir, finished(workdir, STUDY)


def planned_jobs(done) -> dict[str, int]:
    """Snakemake's dry-run job counts by rule."""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.MULTILINE)
            if rule != "total"}


def test_every_replication_has_its_chain(study):
    _, results = study
    for scenario in ("mechanism-MCAR", "mechanism-MNAR"):
        for r in (1, 2):
            run = results / scenario / f"rep_{r}"
            assert (run / "fits" / "complete.json").exists() and (run / "estimates.csv").exists(), run


def test_summary_has_every_method_term_and_measure(study):
    _, results = study
    summary = pd.read_csv(results / "summary.csv")
    assert all(c in summary.columns for c in COLUMNS)
    assert all(f"{c}_mcse" in summary.columns for c in ("bias", "rmse", "coverage", "emp_se", "model_se"))
    assert set(summary["method"]) == {"complete", "listwise", "pooled"}
    assert set(summary["scenario"]) == {"mechanism-MCAR", "mechanism-MNAR"}
    assert (summary["n_reps"] == 2).all()
    assert {"ses", "sd__(Intercept)", "cor__(Intercept).ses", "sd__Observation"} <= set(summary["term"])
    page = (results / "study.html").read_text()
    assert page.count("data:image/") >= 2 and "Coverage" in page


def test_replications_differ_and_scenarios_differ(study):
    _, results = study
    read = lambda scenario, r: pd.read_parquet(results / scenario / f"rep_{r}" / "data" / "complete.parquet")  # noqa: E731
    assert not read("mechanism-MCAR", 1).equals(read("mechanism-MCAR", 2))
    assert not read("mechanism-MCAR", 1).equals(read("mechanism-MNAR", 1))


def test_rerun_does_nothing_and_more_replications_run_only_new_jobs(study):
    workdir, _ = study
    again = run_workflow(workdir, STUDY, extra=["-n"])
    assert "Nothing to be done" in again.stdout + again.stderr
    more = run_workflow(workdir, {**STUDY, "study": {**STUDY["study"], "replications": 3}}, extra=["-n"])
    jobs = planned_jobs(more)
    assert jobs["simulate"] == 2 and jobs["impute"] == 4 and jobs["replication"] == 2, jobs
    assert jobs["study_summary"] == 1


def test_a_scenario_that_overrides_the_seed_gets_its_own_numbers(tmp_path):
    """The rules read the seed from the run's config (get_param): scenario b's seed makes b's data, and a's
    (the master seed) a's. The two scenarios share their data settings, so with one seed their data would agree."""
    config = {**STUDY, "study": {"replications": 2, "scenarios": {"a": {}, "b": {"seed": 7}, "c": {}}}}
    targets = [f"results/tiny_study/{name}/rep_1/data/complete.parquet" for name in ("a", "b", "c")]
    done = run_workflow(tmp_path, config, extra=targets)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b, c = (pd.read_parquet(tmp_path / target) for target in targets)
    assert a.equals(c) and not a.equals(b)


def test_the_in_process_study_gives_snakemakes_estimates(study, tmp_path):
    """benchmarks/study_in_process.py makes each replication by the same stages, parameters and seeds as the
    rules: its estimates.csv are byte for byte those of the Snakemake run, and it keeps up with the stages'
    signatures (it is not run by the workflow, so only this test would notice it falling behind)."""
    workdir, _ = study
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(STUDY))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "study_in_process.py"), str(config),
                           "--out", str(tmp_path / "out"), "--workers", "1", "--compare-with",
                           str(workdir / "results")], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "byte-identical to" in done.stdout and "in 4 of the 4 replications both made" in done.stdout, done.stdout
