"""The start-up checks run once, in the main Snakemake process; a job that reads the workflow again on its own
(as each cluster job does: ``--mode remote``) skips them, and still gets the params the main process planned."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from test_workflow import REPO, estimates, finished

#: A user's data with one school of a single pupil: a warning of the start-up check, which load_data records.
OWN = {"scenario": "own", "data": {"source": "school.csv"}, "imputation": {"m": 2, "iterations": 2},
       "model": {"formula": "mathach ~ ses + (1 + ses | schid)"}}
#: Simulated data with a nested model compared by D2 and D3 (pooling.compare), fitted by ML.
COMPARED = {"scenario": "compared", "data": {"simulate": {"n_schools": 20}}, "imputation": {"m": 2, "iterations": 2},
            "model": {"reml": False}, "pooling": {"compare": [
                {"name": "no_slope", "formula": "mathach ~ minority + female + ses + meanses + (1 | schid)"}]}}


def remote_job(workdir, target: str, rule: str) -> subprocess.CompletedProcess:
    """Run one job as a cluster job runs it: Snakemake reads the workflow again, in remote mode, for that job."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / "extra.yaml"), "--target-jobs", target, "--allowed-rules", rule,
               "--cores", "1", "--force", "--nolock", "--no-hooks", "--ignore-incomplete", "--mode", "remote"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A finished run on a user's data, made by the main process."""
    workdir = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(1)
    schools = [*range(1, 21)] * 6 + [21]                       # school 21 has one pupil: a warning
    data = pd.DataFrame({"schid": schools, "ses": rng.normal(size=len(schools))})
    data["mathach"] = 12 + 2 * data["ses"] + rng.normal(size=len(data))
    data.loc[::7, "ses"] = None
    data.to_csv(workdir / "school.csv", index=False)
    return workdir, finished(workdir, OWN)


def test_a_job_on_its_own_makes_what_the_main_process_made(own):
    """load_data records the warnings of the check it skipped; impute finds the same level-2 columns."""
    workdir, results = own
    checks = json.loads((results / "checks.json").read_text())
    assert len(checks["warnings"]) == 1 and "single observation" in checks["warnings"][0]
    imputed = (results / "imputations" / "imp_1.parquet").read_bytes()
    for target, rule in (("load_data:", "load_data"), ("impute:run=own,k=1", "impute")):
        done = remote_job(workdir, target, rule)
        assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((results / "checks.json").read_text()) == checks
    assert (results / "imputations" / "imp_1.parquet").read_bytes() == imputed


def test_a_job_on_its_own_runs_no_check(own):
    """With the data file emptied, the main process would stop ('the file is empty'); fit and pool jobs,
    whose params need no data, run on and make the same bytes."""
    workdir, results = own
    fit, pooled = estimates(results / "fits" / "imp_1.json"), (results / "pooled" / "ranef.csv").read_bytes()
    data = (workdir / "school.csv").read_bytes()
    (workdir / "school.csv").write_text("")
    try:
        for target, rule in (("fit:run=own,k=1", "fit"), ("pool:run=own", "pool")):
            done = remote_job(workdir, target, rule)
            assert done.returncode == 0, done.stderr[-3000:]
            assert "mlmi:" not in done.stderr, done.stderr
    finally:
        (workdir / "school.csv").write_bytes(data)
    assert estimates(results / "fits" / "imp_1.json") == fit
    assert (results / "pooled" / "ranef.csv").read_bytes() == pooled


def test_a_comparison_job_on_its_own_makes_what_the_main_process_made(tmp_path):
    """fit_compare and pool read pooling.compare and model.family from the config as given, in a job that skipped
    the start-up checks: the nested model's fit and the D2 and D3 rows come out the same."""
    results = finished(tmp_path, COMPARED)
    fit_path, tests_path = results / "fits" / "compare" / "no_slope" / "imp_1.json", results / "pooled" / "tests.csv"
    fit, tests = estimates(fit_path), tests_path.read_bytes()
    assert pd.read_csv(tests_path)["method"].tolist() == ["D2", "D3"]
    for target, rule in (("fit_compare:run=compared,comparison=no_slope,k=1", "fit_compare"),
                         ("pool:run=compared", "pool")):
        done = remote_job(tmp_path, target, rule)
        assert done.returncode == 0, done.stderr[-3000:]
    assert estimates(fit_path) == fit
    assert tests_path.read_bytes() == tests
