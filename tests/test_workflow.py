"""The whole workflow, run by Snakemake from another working directory, as a user runs it."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO.parent / "shared" / "checks" / "contract.py"
TINY = {"scenario": "tiny", "data": {"simulate": {"n_schools": 20}}, "imputation": {"m": 2, "iterations": 2},
        "pooling": {"mertools_legacy": True}}


def snakemake_command(workdir: Path, config: dict, cores: int = 2, extra=()) -> list[str]:
    """Write ``config`` to ``workdir``/extra.yaml; the command that runs the workflow there with it."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "extra.yaml").write_text(yaml.safe_dump(config))
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(workdir / "extra.yaml"), "--cores", str(cores), *extra]


def run_workflow(workdir: Path, config: dict, cores: int = 2, extra=()) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with ``config`` merged over the default."""
    return subprocess.run(snakemake_command(workdir, config, cores, extra), capture_output=True, text=True,
                          timeout=900)


def finished(workdir: Path, config: dict, cores: int = 2) -> Path:
    """Run the workflow, fail the test with Snakemake's output if it fails, return the results;
    what the run printed on stderr is kept in ``workdir``/stderr.txt."""
    done = run_workflow(workdir, config, cores)
    assert done.returncode == 0, done.stderr[-4000:]
    (workdir / "stderr.txt").write_text(done.stderr)
    return workdir / "results" / config.get("scenario", "hsb")


def estimates(fit_path: Path) -> dict:
    """A fit record without its timing: everything that must repeat exactly."""
    record = json.loads(fit_path.read_text())
    record.pop("fit_seconds")
    return record


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return {cores: finished(tmp_path_factory.mktemp(f"cores{cores}"), TINY, cores) for cores in (1, 2)}


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return finished(tmp_path_factory.mktemp("default"), {})


def test_tiny_run_meets_the_output_contract(tiny):
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} is not beside this clone")
    check = subprocess.run([sys.executable, str(CONTRACT), str(tiny[2]), "--simulated"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_mertools_legacy_table_only_on_request(tiny, default):
    from mlmi.fit.record import FitRecord
    from mlmi.pool.mertools import mertools_fixed_effects

    fits = [FitRecord.from_json(tiny[2] / "fits" / f"imp_{k}.json") for k in (1, 2)]
    legacy = pd.read_csv(tiny[2] / "pooled" / "mertools_fixed_effects.csv")
    pd.testing.assert_frame_equal(legacy, mertools_fixed_effects(fits), check_exact=False, rtol=1e-15)
    assert not (default / "pooled" / "mertools_fixed_effects.csv").exists()


def test_one_and_two_cores_give_identical_results(tiny):
    for table in sorted((tiny[1] / "pooled").glob("*.csv")):
        assert table.read_bytes() == (tiny[2] / "pooled" / table.name).read_bytes(), table.name
    for name in ("imp_1.json", "imp_2.json", "listwise.json"):
        assert estimates(tiny[1] / "fits" / name) == estimates(tiny[2] / "fits" / name), name
    for name in ("imp_1.parquet", "imp_2.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tiny[1] / "imputations" / name),
                                      pd.read_parquet(tiny[2] / "imputations" / name))


def test_provenance_holds_every_output_checksum(tiny):
    from mlmi.run.provenance import sha256

    record = json.loads((tiny[2] / "provenance.json").read_text())
    workdir = tiny[2].parent.parent
    assert {"pooled/fixed_effects.csv", "report.html", "fits/imp_2.json", "imputations/imp_1.parquet"} <= {
        path.removeprefix("results/tiny/") for path in record["outputs"]}
    for path, digest in record["outputs"].items():
        assert sha256(workdir / path) == digest, path
    assert record["config"]["imputation"]["m"] == 2 and record["seeds"]["master"] == record["config"]["seed"]
    verified = subprocess.run([sys.executable, "-m", "mlmi", "verify", str(tiny[2])], capture_output=True, text=True)
    assert verified.returncode == 0 and " 0 of " in verified.stdout, verified.stdout


def test_level2_columns_are_one_value_per_school_in_every_imputation(tiny):
    missing = pd.read_parquet(tiny[2] / "data" / "missing.parquet")
    assert missing["size"].isna().any()                     # the default ampute's 5% of size cells
    for k in (1, 2):
        imputed = pd.read_parquet(tiny[2] / "imputations" / f"imp_{k}.parquet")
        assert (imputed.groupby("schid")[["size", "schtype"]].nunique() == 1).all().all(), k


def test_the_default_says_its_imputation_cannot_carry_the_random_slope(tiny):
    """imputations/models.csv, the job's log and the report name the one-line fix."""
    models = pd.read_csv(tiny[2] / "imputations" / "models.csv").set_index("variable")
    fix = "ses has a random slope in model.formula but miceforest imputes it without one: " \
          "set imputation.method: multilevel"
    assert models.loc["ses", "warning"] == fix and not models.loc["ses", "carries_model"]
    assert models.loc["size", "level"] == 2
    assert fix in (tiny[2] / "logs" / "imputation_models.log").read_text()
    assert fix in (tiny[2] / "report.html").read_text()
    traces = [pd.read_csv(tiny[2] / "imputations" / f"trace_{k}.csv") for k in (1, 2)]
    assert all(list(trace.columns) == ["iteration", "parameter", "value"] and trace.empty for trace in traces)
    outputs = json.loads((tiny[2] / "provenance.json").read_text())["outputs"]
    assert {"results/tiny/imputations/models.csv", "results/tiny/imputations/trace_2.csv"} <= set(outputs)


def test_multilevel_imputation_runs_in_the_workflow(tmp_path):
    """The multilevel sampler through the impute rule: a trace per imputation, level 2 per school."""
    pytest.importorskip("mlmi.impute.multilevel")
    config = {**TINY, "scenario": "multilevel", "imputation": {"method": "multilevel", "m": 2, "burn_in": 50}}
    results = finished(tmp_path, config)
    for k in (1, 2):
        trace = pd.read_csv(results / "imputations" / f"trace_{k}.csv")
        assert list(trace.columns) == ["iteration", "parameter", "value"] and len(trace) > 0
        imputed = pd.read_parquet(results / "imputations" / f"imp_{k}.parquet")
        assert not imputed.isna().any().any()
        assert (imputed.groupby("schid")[["size", "schtype"]].nunique() == 1).all().all()
    assert (pd.read_csv(results / "imputations" / "models.csv", keep_default_na=False)["warning"] == "").all()


def test_the_multilevel_study_is_planned(tmp_path):
    """A study over imputation methods and school-level missingness plans to the end (dry run)."""
    planned = run_workflow(tmp_path, {}, extra=("-n", "--configfile", str(REPO / "config" / "studies" /
                                                                          "multilevel.yaml")))
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "results/multilevel_study/multilevel_mechanism-MAR/rep_2/imputations/trace_10.csv" in planned.stdout
    assert "results/multilevel_study/summary.csv" in planned.stdout


def test_every_rule_leaves_a_log_and_a_benchmark(tiny):
    for rule in ("simulate", "ampute", "impute/1", "impute/2", "imputation_models", "fit/1", "fit/2",
                 "fit_listwise", "pool", "report", "provenance"):
        assert (tiny[2] / "logs" / f"{rule}.log").exists(), rule
        assert (tiny[2] / "benchmarks" / f"{rule}.tsv").exists(), rule


def test_a_second_run_has_nothing_to_do(tiny):
    again = run_workflow(tiny[2].parent.parent, TINY)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_run_ends_with_where_to_look_once(tiny):
    said = (tiny[2].parent.parent / "stderr.txt").read_text()
    report, console = said.splitlines()[-2:]
    assert Path(report.removeprefix("mlmi: report: ")).resolve() == (tiny[2] / "report.html").resolve()
    assert console.startswith("mlmi: console view: mlmi summary ")
    assert Path(console.removeprefix("mlmi: console view: mlmi summary ")).resolve() == tiny[2].resolve()
    assert said.count("mlmi: report:") == 1 and said.count("mlmi summary") == 1
    assert "Shell command" not in said and "reason:" not in said          # the profile's quieter defaults


def test_a_run_of_other_targets_points_to_no_page_it_did_not_make(tmp_path):
    """Asked for the data alone, a run ends without the closing lines: it made no report nor pooled tables."""
    done = run_workflow(tmp_path, TINY, extra=["results/tiny/data/missing.parquet"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "results" / "tiny" / "data" / "missing.parquet").exists()
    assert "mlmi: report:" not in done.stderr and "mlmi summary" not in done.stderr


def test_a_failing_job_says_where_its_log_is(tmp_path, tiny):
    """A damaged fit record, newer than the pooled tables: the pool job fails, its log has the traceback."""
    workdir = tmp_path / "copy"
    shutil.copytree(tiny[2].parent.parent, workdir)
    (workdir / "results" / "tiny" / "fits" / "imp_1.json").write_text("not JSON")
    done = run_workflow(workdir, TINY)
    assert done.returncode != 0
    assert "results/tiny/logs/pool.log" in done.stderr
    assert "Error in rule pool" in done.stderr and "JSONDecodeError" in done.stderr   # the error, and the log printed
    assert "mlmi: report:" not in done.stderr
    log = (workdir / "results" / "tiny" / "logs" / "pool.log").read_text()
    assert "Traceback" in log and "JSONDecodeError" in log


def test_a_truncated_imputation_is_made_again_and_its_dependants_with_it(tmp_path, tiny):
    """Issue 12, item 7: half of imp_2.parquet's bytes used to fail the fit on every rerun, for ever."""
    workdir = tmp_path / "copy"
    shutil.copytree(tiny[2].parent.parent, workdir)
    results = workdir / "results" / "tiny"
    whole = (results / "imputations" / "imp_2.parquet").read_bytes()
    (results / "imputations" / "imp_2.parquet").write_bytes(whole[: len(whole) // 2])
    done = run_workflow(workdir, TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line for line in done.stderr.splitlines() if line.startswith("mlmi:")][:-2] == [
        "mlmi: results/tiny/imputations/imp_2.parquet was damaged (it does not end with Parquet's marker 'PAR1': "
        "cut short?); it will be made again"]                              # then the run's two closing lines
    assert "rule impute:" in done.stdout + done.stderr and "rule fit:" in done.stdout + done.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(results / "imputations" / "imp_2.parquet"),
                                  pd.read_parquet(tiny[2] / "imputations" / "imp_2.parquet"))
    for table in sorted((tiny[2] / "pooled").glob("*.csv")):
        assert (results / "pooled" / table.name).read_bytes() == table.read_bytes(), table.name
    again = run_workflow(workdir, TINY)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_smaller_m_in_the_same_folder_reports_only_its_own_jobs(tmp_path):
    """m = 6 then m = 2 in one folder: the second report and provenance read none of fits 3-6's files."""
    finished(tmp_path, {**TINY, "imputation": {"m": 6, "iterations": 2}})
    first = tmp_path / "results" / "tiny"
    stale = [k for k in range(3, 7) if " WARNING " in (first / "logs" / "fit" / f"{k}.log").read_text()]
    assert stale, "no fit of 3-6 logged a warning: the test would prove nothing"
    results = finished(tmp_path, TINY)
    page = (results / "report.html").read_text()
    warnings = page[page.index("<h2>Warnings</h2>"):page.index("</section>", page.index("<h2>Warnings</h2>"))]
    assert not re.search(r"fit[/ ][3-6]\b", warnings), warnings
    jobs = ["simulate", "ampute", "imputation_models", "impute/1", "impute/2", "fit/1", "fit/2", "fit_listwise",
            "pool", "report"]
    seconds = sum(pd.read_csv(results / "benchmarks" / f"{job}.tsv", sep="\t")["s"].iloc[0] for job in jobs)
    assert json.loads((results / "provenance.json").read_text())["run_seconds"] == pytest.approx(seconds)


@pytest.mark.parametrize("config, line", [
    ({"imputation": {"m": 1}}, "mlmi: config key imputation.m: 1 is less than the minimum of 2"),
    ({"modle": {}}, "mlmi: config key (top level): Additional properties are not allowed ('modle' was unexpected)"),
    ({"data": {"source": "mine.csv"}, "imputation": {"method": "external", "files": ["imp*.csv"]}},
     "mlmi: imputation.files: the glob 'imp*.csv' matches no file"),
    ({"model": {"reml": False},
      "pooling": {"compare": [{"name": "c", "formula": "mathach ~ ses + size + (1 | schid)"}]}},
     "mlmi: pooling.compare 'c': the formula 'mathach ~ ses + size + (1 | schid)' is not nested in model.formula"),
    ({"pooling": {"compare": [{"name": "c", "formula": "mathach ~ ses + (1 | schid)", "methods": ["D3"]}]}},
     "mlmi: pooling.compare 'c': D3 evaluates the likelihood at the pooled fixed effects and needs ML fits"),
])
def test_bad_input_stops_before_any_job_with_one_line(tmp_path, config, line, untouched):
    # 2 schools of 3 students: data lme4 can fit (more rows than random effects), so only the config is at fault.
    pd.DataFrame({"schid": [1, 1, 1, 2, 2, 2], "mathach": [1.0, 2.0, 1.5, 2.5, 3.0, 0.5],
                  "ses": [0.1, 0.2, -0.3, 0.4, 0.0, -0.1], "minority": [0, 1, 0, 1, 1, 0], "female": [1, 0, 0, 1, 0, 1],
                  "meanses": [0.0, 0.0, 0.0, 0.1, 0.1, 0.1]}).to_csv(tmp_path / "mine.csv", index=False)
    with untouched(tmp_path / "mine.csv"):
        done = run_workflow(tmp_path, config)
    assert done.returncode != 0
    said = [row for row in done.stderr.splitlines() if row.startswith("mlmi:")]
    assert len(said) == 1 and said[0].startswith(line), done.stderr
    assert not (tmp_path / "results").exists()


def test_users_own_data_runs_without_amputation_or_truth(tmp_path, tiny, untouched):
    missing = pd.read_parquet(tiny[2] / "data" / "missing.parquet")
    missing.to_csv(tmp_path / "school.csv", index=False)
    with untouched(tmp_path / "school.csv"):
        results = finished(tmp_path, {"scenario": "own", "data": {"source": "school.csv"},
                                      "imputation": {"m": 2, "iterations": 2}})
    pd.testing.assert_frame_equal(pd.read_parquet(results / "data" / "missing.parquet"), missing,
                                  check_dtype=False)
    assert not (results / "data" / "truth.json").exists() and not (results / "data" / "complete.parquet").exists()
    assert "truth" not in (results / "report.html").read_text().lower()
    assert len(pd.read_csv(results / "pooled" / "fixed_effects.csv")) == 5


def test_default_pooled_fixed_effects_are_near_the_truth(default):
    pooled = pd.read_csv(default / "pooled" / "fixed_effects.csv").set_index("term")
    truth = json.loads((default / "data" / "truth.json").read_text())["fixed_effects"]
    assert list(pooled.index) == list(truth)
    # The acceptance bound: every pooled estimate within 3 pooled SEs of the value simulated.
    z = (pooled["estimate"] - pd.Series(truth)) / pooled["std_error"]
    assert (z.abs() < 3).all(), z.to_dict()
    assert (pooled["m"] == 5).all() and (pooled["dfcom"] == pooled["dfcom"].iloc[0]).all()


def test_default_data_have_the_hsb_shape(default):
    data = pd.read_parquet(default / "data" / "complete.parquet")
    schools = data.groupby("schid")
    # design §6, with the tolerances of tests/test_simulate.py
    assert schools.ngroups == 160 and schools.size().between(14, 67).all()
    assert abs(len(data) - 7185) <= 0.05 * 7185
    assert schools["schtype"].first().sum() == 70
    assert abs(schools["meanses"].first().std() - 0.41) <= 0.06
    assert abs(data["ses"].std() - 0.78) <= 0.05
    assert abs(data["minority"].mean() - 0.275) <= 0.04 and abs(data["female"].mean() - 0.528) <= 0.03
    assert abs(data["mathach"].mean() - 12.75) <= 0.6 and abs(data["mathach"].std() - 6.88) <= 0.5


def test_default_amputation_rates(default):
    complete = pd.read_parquet(default / "data" / "complete.parquet")
    missing = pd.read_parquet(default / "data" / "missing.parquet")
    n = len(missing)
    for column in ("minority", "female", "ses", "size"):
        # binomial(n, 0.05): 4 SDs is about 0.010 at n = 7,200
        assert abs(missing[column].isna().mean() - 0.05) <= 4 * np.sqrt(0.05 * 0.95 / n), column
    for column in ("schid", "mathach", "schtype", "meanses"):
        pd.testing.assert_series_equal(missing[column], complete[column])
    imputed = pd.read_parquet(default / "imputations" / "imp_1.parquet")
    assert not imputed.isna().any().any() and imputed.dtypes.equals(missing.dtypes)


def test_default_report_is_one_self_contained_page(default):
    page = (default / "report.html").read_text()
    assert "data:image/png;base64," in page and "<script src" not in page and "<link" not in page
    for heading in ("Warnings", "Data and missingness", "Fixed effects", "Random effects", "Model information"):
        assert heading in page


def test_comparison_models_are_fitted_as_their_own_jobs(tmp_path):
    """Each pooling.compare model is fitted to every imputation by fit_compare jobs the pool waits for."""
    config = {**TINY, "model": {"reml": False}, "pooling": {"compare": [
        {"name": "no_slope", "formula": "mathach ~ minority + female + ses + meanses + (1 | schid)"},
        {"name": "no_ses", "formula": "mathach ~ minority + female + (1 | schid)", "methods": ["D2"]}]}}
    done = run_workflow(tmp_path, config, extra=["-n"])
    assert done.returncode == 0, done.stderr[-4000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, flags=re.MULTILINE))
    assert counts["fit_compare"] == "4" and counts["fit"] == "2" and counts["pool"] == "1"
    done = run_workflow(tmp_path, config)  # and for real: the jobs run and the pool writes their tests
    assert done.returncode == 0, done.stderr[-4000:]
    tests = pd.read_csv(next(tmp_path.glob("results/*/pooled/tests.csv")))
    assert sorted(tests["method"]) == ["D2", "D2", "D3"], tests
