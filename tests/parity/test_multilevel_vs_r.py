"""R's multilevel imputations beside a study (issue 13): benchmarks/multilevel_vs_r.py and
benchmarks/r_multilevel.R.

- The driver, without R: on a made-up finished study whose R outputs are already there, it exports
  the incomplete data, runs no R, summarises mlmi's and R's methods with ``summarize_study`` (bias
  checked by hand), honours ``--scenarios``, and writes nothing outside ``results/<study>/``.
- The R script, with R: on complete data every imputation is the data, so both methods' rows must be
  the lme4 fit of the data, which mlmi's own fit reproduces (fixed effects and SEs 1e-4 relative,
  SDs and sigma 1e-3): this pins the output's columns, term names and pooling to mlmi's
  ``replication_estimates``. Skipped, with the reason, without Rscript and lme4, mice, jomo, pan,
  broom.mixed (Debian: r-cran-lme4 r-cran-mice r-cran-jomo r-cran-pan r-cran-broom.mixed).
"""
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.data.simulate import simulate_hsb
from mlmi.fit.lmer import fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.pool.variance_components import wald_intervals
from mlmi.run.study import replication_estimates

REPO = Path(__file__).parents[2]
SPEC = importlib.util.spec_from_file_location("multilevel_vs_r", REPO / "benchmarks" / "multilevel_vs_r.py")
driver = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(driver)

TRUTH = {"fixed_effects": {"(Intercept)": 14.0, "ses": 2.0},
         "random_effects": {"group": "schid", "sd": {"(Intercept)": 1.5, "ses": 0.5}, "cor": {"(Intercept).ses": -0.6}},
         "sigma": 6.0}
SETTINGS = ["--m", "3", "--nburn", "20", "--nbetween", "2", "--maxit", "2"]


def estimates(method: str, ses: float) -> pd.DataFrame:
    """A replication's estimates of one method: the truth except ses, with intervals +-0.5."""
    values = {"(Intercept)": 14.0, "ses": ses}
    fixed = pd.DataFrame({"method": method, "term": list(values), "estimate": list(values.values()),
                          "std_error": 0.25, "conf_low": [v - 0.5 for v in values.values()],
                          "conf_high": [v + 0.5 for v in values.values()], "fmi": 0.1})
    random = pd.DataFrame({"method": method, "term": ["sd__(Intercept)", "cor__(Intercept).ses", "sd__ses",
                                                      "sd__Observation"], "estimate": [1.5, -0.6, 0.5, 6.0]})
    return pd.concat([fixed, random], ignore_index=True)


@pytest.fixture
def study(tmp_path):
    """A finished two-scenario, two-replication study with R's outputs already made by the same settings."""
    root = tmp_path / "results" / "fake"
    settings = {"m": 3, "nburn": 20, "nbetween": 2, "maxit": 2, "methods": "jomo,mice_2l.pan",
                "formula": driver.FORMULA}
    for scenario in ("mcar", "mar"):
        for r, ses in ((1, 2.2), (2, 2.0)):
            rep = root / scenario / f"rep_{r}"
            (rep / "data").mkdir(parents=True)
            pd.DataFrame({"schid": [1, 1, 2], "ses": [0.5, np.nan, 1.0]}).to_parquet(rep / "data" / "missing.parquet")
            (rep / "data" / "truth.json").write_text(json.dumps(TRUTH))
            pd.concat([estimates("pooled", ses), estimates("listwise", ses - 1)]).to_csv(rep / "estimates.csv",
                                                                                       index=False)
            out = driver.r_folder(root, rep)
            out.mkdir(parents=True)
            pd.concat([estimates("jomo", ses + 0.1), estimates("mice_2l.pan", ses)]).to_csv(
                out / "r_estimates.csv", index=False)
            pd.DataFrame({"method": ["jomo", "mice_2l.pan"], "m": 3, "iterations": [26, 2], "seconds": [1.0, 2.0],
                          "seconds_per_imputation": [1 / 3, 2 / 3], "singular_fits": 0}).to_csv(
                out / "r_timing.csv", index=False)
            (out / "r_settings.json").write_text(json.dumps({**settings, "seed": driver.replication_seed(13, rep)}))
    return root


def test_driver_summarises_r_beside_mlmi_without_rerunning_r(study, capsys):
    """Done replications are not rerun; the summary has every method, with bias as computed by hand."""
    before = sorted(p for p in study.parent.parent.rglob("*") if not p.is_relative_to(study))
    driver.main([str(study), *SETTINGS])
    printed = capsys.readouterr().out
    assert "R ran on 0 of 4 replications" in printed
    summary = pd.read_csv(study / "summary_with_r.csv")
    assert set(summary["method"]) == {"pooled", "listwise", "jomo", "mice_2l.pan"}
    assert set(summary["scenario"]) == {"mcar", "mar"}
    ses = summary[summary["term"] == "ses"].set_index(["scenario", "method"])
    # ses: pooled 2.2 and 2.0 (mean 2.1), jomo 2.3 and 2.1 (2.2), listwise 1.2 and 1.0 (1.1); truth 2.0
    assert ses.loc[("mar", "pooled"), "bias"] == pytest.approx(0.1)
    assert ses.loc[("mar", "jomo"), "bias"] == pytest.approx(0.2)
    assert ses.loc[("mcar", "listwise"), "coverage"] == 0.0
    assert ses.loc[("mcar", "jomo"), "coverage"] == 1.0
    assert (pd.read_csv(study / "r_reference" / "mar" / "rep_2" / "missing.csv")["ses"].isna().tolist()
            == [False, True, False])
    after = sorted(p for p in study.parent.parent.rglob("*") if not p.is_relative_to(study))
    assert after == before, "the driver wrote outside results/<study>/"


def test_driver_runs_r_only_where_asked_and_when_settings_change(study, monkeypatch, capsys):
    """--scenarios limits the scenarios; other settings than those recorded mean running R again."""
    ran = []
    monkeypatch.setattr(driver.subprocess, "run", lambda args, **kw: ran.append(args) or pytest.fail("R ran"))
    driver.main([str(study), *SETTINGS, "--scenarios", "ma*"])
    assert set(pd.read_csv(study / "summary_with_r.csv")["scenario"]) == {"mar"}
    assert not ran
    with pytest.raises(pytest.fail.Exception):
        driver.main([str(study), *SETTINGS[:-1], "5", "--scenarios", "ma*"])  # maxit 5, not 2
    assert ran and "maxit=5" in ran[0]


def missing_r() -> str:
    """What of R the R script needs and lacks, or ''."""
    if shutil.which("Rscript") is None:
        return "Rscript not found on PATH"
    packages = ["lme4", "mice", "jomo", "pan", "broom.mixed"]
    check = subprocess.run(["Rscript", "-e", "cat(Filter(function(p) !requireNamespace(p, quietly = TRUE), "
                            "commandArgs(TRUE)))", *packages], capture_output=True, text=True, timeout=120)
    return f"R packages missing: {check.stdout.strip()}" if check.stdout.strip() else ""


def test_r_script_on_complete_data_gives_mlmis_fit_in_replication_estimates_format(tmp_path):
    """With nothing to impute, jomo's and mice's pooled rows are the lme4 fit, and mlmi's fit is that fit."""
    lacking = missing_r()
    if lacking:
        pytest.skip(f"{lacking} (Debian: r-cran-lme4 r-cran-mice r-cran-jomo r-cran-pan r-cran-broom.mixed)")
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]["simulate"]
    data, _ = simulate_hsb({**settings, "n_schools": 25}, np.random.default_rng(7))
    data.to_csv(tmp_path / "complete.csv", index=False)
    done = subprocess.run(["Rscript", str(REPO / "benchmarks" / "r_multilevel.R"), f"input={tmp_path / 'complete.csv'}",
                           f"output={tmp_path / 'r.csv'}", f"timing={tmp_path / 't.csv'}", "m=2", "nburn=5",
                           "nbetween=2", "maxit=1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ours = FitRecord.from_fit(fit_mixed(data, driver.FORMULA))
    expected = replication_estimates(
        pooled=ours.fixed_effects.assign(fmi=0.0),
        random_effects=pd.DataFrame(ours.random_parameters), variance_components=wald_intervals(ours),
        listwise=ours, complete=ours)
    expected = expected[expected["method"] == "pooled"].set_index("term")
    r = pd.read_csv(tmp_path / "r.csv")
    assert list(r.columns) == ["method", "term", "estimate", "std_error", "conf_low", "conf_high", "fmi"]
    assert list(r["method"].unique()) == ["jomo", "mice_2l.pan"]
    for method, rows in r.groupby("method"):
        rows = rows.set_index("term")
        assert sorted(rows.index) == sorted(expected.index), method
        fixed = ~expected.index.str.startswith(("sd__", "cor__"))      # R's variance rows are estimates only
        np.testing.assert_allclose(rows.loc[expected.index[fixed], ["estimate", "std_error"]],
                                   expected.loc[fixed, ["estimate", "std_error"]], rtol=1e-4, err_msg=method)
        np.testing.assert_allclose(rows.loc[expected.index[~fixed], "estimate"], expected.loc[~fixed, "estimate"],
                                   rtol=1e-3, err_msg=method)
        assert rows.loc[expected.index[~fixed], ["std_error", "conf_low", "conf_high", "fmi"]].isna().all().all()
        assert (rows.loc[expected.index[fixed], "fmi"] < 0.01).all(), method   # b = 0: mice's floor only
