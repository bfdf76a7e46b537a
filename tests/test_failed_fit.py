"""Fits that do not converge: rescued by other optimizers and starts, or declared failed and then
stopped at or left out of the pool (``pooling.on_failed_fit``); singular fits flagged and pooled.

The failure is real, not staged: a random slope on an uncentred variable (``ses + c``) is the
classic cause of lme4's convergence trouble. Shifting ses changes nothing in the model (the
intercept absorbs the shift, the slope's variance and the residual stay), so the centred fit
is the independent reference: a rescued fit must reach its REML criterion, sigma and slope. On
these data lme4 1.1 itself stops at c = 100 and c = 1000 on a singular fit (theta[2] at 0) about
1 deviance unit above that optimum, and reports no convergence problem. mlmi's first attempt (BOBYQA, as
lme4's) stops there too at c = 100, and a restart off the bound reaches the optimum; at c = 3000 nothing
does (``HOPELESS``).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.fit.lmer import GRAD_TOL, RESCUES, fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.pool.failed_fits import FailedFitError
from mlmi.pool.rubin import pool
from mlmi.report.console import summary
from mlmi.report.run_report import gather_warnings, model_info_section
from mlmi.run import io
from mlmi.run import stages
from mlmi.run.inputs import schema_problem
from mlmi.run.layout import POOLED_TABLES
from test_workflow import REPO, run_workflow

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "small_lme4.json").read_text())
FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"
#: An uncentring of ses that no optimizer and start of mlmi's brings to lme4's convergence criterion.
HOPELESS = 3000
TABLES = tuple(POOLED_TABLES)  # every table the pool stage writes (mlmi.run.layout)


@pytest.fixture(scope="module")
def small():
    return pd.read_csv(DATA / "small.csv")


def shifted(data: pd.DataFrame, shift: float) -> pd.DataFrame:
    """The data with ses uncentred by ``shift``: the same model, a badly scaled random slope."""
    return data.assign(ses=data["ses"] + shift)


def noisy(data: pd.DataFrame, seed: int) -> pd.DataFrame:
    """An 'imputation' of the data: the outcome moved a little, rows and groups unchanged."""
    return data.assign(mathach=data["mathach"] + np.random.default_rng(seed).normal(0, 0.5, len(data)))


@pytest.fixture(scope="module")
def centred(small):
    return fit_mixed(small, FORMULA)


@pytest.fixture(scope="module")
def rescued(small):
    return fit_mixed(shifted(small, 100), FORMULA)


@pytest.fixture(scope="module")
def hopeless(small):
    return fit_mixed(shifted(small, HOPELESS), FORMULA)


def test_a_fit_whose_first_optimizer_fails_is_rescued(rescued, centred):
    convergence = rescued["convergence"]
    first, kept = convergence["attempts"][0], convergence["attempts"][convergence["kept"] - 1]
    assert (first["optimizer"], first["start"]) == ("BOBYQA", "lme4 default") and first["max_abs_gradient"] > 0.1
    assert first["outcome"].startswith("not converged: max|grad|")
    assert convergence["converged"] and kept["outcome"] == "kept"
    assert convergence["kept"] > 1 and kept["start"] != "lme4 default"   # a later start won
    assert convergence["max_abs_gradient"] < GRAD_TOL
    # The same optimum as the centred fit, which test_fit checks against lme4.
    assert rescued["reml_criterion"] == pytest.approx(centred["reml_criterion"], abs=1e-6)
    assert rescued["sigma"] == pytest.approx(centred["sigma"], rel=1e-6)
    assert rescued["random_effects"]["sd"]["ses"] == pytest.approx(centred["random_effects"]["sd"]["ses"], rel=1e-4)
    slope = {row["term"]: row["estimate"] for row in centred["fixed_effects"]}
    estimates = {row["term"]: row["estimate"] for row in rescued["fixed_effects"]}
    assert estimates["ses"] == pytest.approx(slope["ses"], rel=1e-5)
    assert estimates["(Intercept)"] == pytest.approx(slope["(Intercept)"] - 100 * slope["ses"], rel=1e-5)


def test_warnings_of_a_start_stay_in_its_attempt(hopeless):
    """statsmodels' MixedLM, a rescue start, fails to converge on the uncentred data: its warning is that
    attempt's, not the fit's, whose kept attempt is another."""
    convergence = hopeless["convergence"]
    statsmodels = next(a for a in convergence["attempts"] if a["start"] == "statsmodels MixedLM")
    assert any("statsmodels MixedLM: " in w and "failed to converge" in w for w in statsmodels["warnings"])
    assert convergence["attempts"].index(statsmodels) + 1 != convergence["kept"]
    assert not any("statsmodels" in w for w in convergence["warnings"])


def test_a_hopeless_fit_is_declared_failed_with_the_optimizers_message(hopeless, centred):
    convergence = hopeless["convergence"]
    attempts = convergence["attempts"]
    assert not convergence["converged"]
    assert [a["optimizer"] for a in attempts[-len(RESCUES):]] == [method for method, _, _ in RESCUES]
    assert all(a["outcome"].startswith("not converged") for a in attempts if a is not attempts[convergence["kept"] - 1])
    kept = attempts[convergence["kept"] - 1]
    assert kept["outcome"] == "kept (the lowest criterion), but not converged"
    # The verdict is lme4's, whatever the optimizer said of itself ("Optimization terminated successfully." here).
    assert convergence["message"] == (f"not converged: max|grad| = {convergence['max_abs_gradient']:.3g}, "
                                      f"not below {GRAD_TOL} (lme4's check)")
    assert convergence["max_abs_gradient"] >= GRAD_TOL
    assert f"no attempt of {len(attempts)} converged" in " ".join(convergence["warnings"])
    assert kept["message"] in " ".join(convergence["warnings"])
    # The verdict is right: the true optimum (the centred fit's) is well below what was reached.
    assert hopeless["reml_criterion"] > centred["reml_criterion"] + 0.1


def test_the_same_data_give_the_same_record(small, hopeless):
    again = fit_mixed(shifted(small, HOPELESS), FORMULA)
    assert {**again, "fit_seconds": None} == {**hopeless, "fit_seconds": None}


def write_record(made: dict, path: Path) -> None:
    """A fit made here written as the fit stage writes one (``mlmi.run.stages.fit``)."""
    io.write_json(FitRecord.from_fit(made).to_json(), path)


@pytest.fixture(scope="module")
def records(small, hopeless, tmp_path_factory):
    """Fit records on disk: imputation 2 of 3 did not converge; a listwise fit."""
    folder = tmp_path_factory.mktemp("fits")
    fits = {1: fit_mixed(noisy(small, 1), FORMULA, label="1"), 2: hopeless,
            3: fit_mixed(noisy(small, 3), FORMULA, label="3"), "listwise": fit_mixed(small.iloc[::2], FORMULA)}
    for k, fit in fits.items():
        write_record(fit, folder / f"imp_{k}.json")
    return folder, fits


def outputs(folder: Path) -> dict:
    return {name: folder / "pooled" / f"{name}.csv" for name in TABLES}


def pool_stage(folder: Path, ks, on_failed_fit: str) -> dict:
    """Run the pool stage in-process on fits ``ks``; return the outputs."""
    written = outputs(folder / on_failed_fit)
    stages.pool_fits([folder / f"imp_{k}.json" for k in ks], folder / "imp_listwise.json", written,
                     on_failed_fit=on_failed_fit)
    return written


def test_stop_fails_the_pool_with_one_line_naming_the_imputation(records):
    folder, fits = records
    with pytest.raises(FailedFitError) as raised:
        pool_stage(folder, (1, 2, 3), "stop")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"1 of 3 fits did not converge and pooling.on_failed_fit is stop: imputation 2 "
                              f"({folder / 'imp_2.json'}): no attempt of {len(fits[2]['convergence']['attempts'])} ")
    convergence = fits[2]["convergence"]
    assert repr(convergence["attempts"][convergence["kept"] - 1]["message"]) in message   # the optimizer's own words
    assert message.endswith("or set pooling.on_failed_fit: warn to pool the fits that converged")
    assert not (folder / "stop").exists()                # nothing half-pooled left behind


def test_warn_pools_the_converged_fits_and_says_which_were_left_out(records, caplog):
    folder, fits = records
    with caplog.at_level("WARNING"):
        written = pool_stage(folder, (1, 2, 3), "warn")
    pooled = pd.read_csv(written["fixed_effects"])
    expected = pool([FitRecord.from_fit(fits[1]), FitRecord.from_fit(fits[3])])
    pd.testing.assert_frame_equal(pooled, expected, check_exact=False, rtol=1e-15)
    assert set(pooled["m"]) == {2}
    assert set(pd.read_csv(written["by_imputation"])["imputation"]) == {1, 3}
    info = pd.read_csv(written["model_info"], dtype={"imputation": str})
    assert list(info["imputation"]) == ["1", "2", "3", "listwise"]
    assert list(info["pooled"]) == [True, False, True, False]
    assert list(info["converged"]) == [True, False, True, True]
    said = "imputation 2 was left out of the pooled results: its fit did not converge " \
           "(pooling.on_failed_fit: warn); 2 of 3 imputations pooled"
    assert said in caplog.text
    warnings = gather_warnings({said: ["pool"]}, info, pooled)
    assert warnings[0] == said and sum(said in w for w in warnings) == 1    # first, and said once
    assert warnings[1].startswith("fit 2: Model failed to converge")      # the fit's own words, once


def test_warn_still_needs_two_converged_fits(records):
    folder, _ = records
    with pytest.raises(FailedFitError, match=r"^only 1 of 2 fits converged, and pooling needs at least 2: "
                                             r"imputation 2 \("):
        pool_stage(folder, (1, 2), "warn")


def test_singular_fits_are_flagged_pooled_and_shown(tmp_path):
    case = REFERENCE["singular"]
    data = pd.read_csv(DATA / case["data"])
    for k in (1, 2):
        write_record(fit_mixed(noisy(data, k), case["formula"]), tmp_path / f"imp_{k}.json")
    write_record(fit_mixed(data, case["formula"]), tmp_path / "imp_listwise.json")
    written = pool_stage(tmp_path, (1, 2), "stop")
    info = pd.read_csv(written["model_info"], dtype={"imputation": str})
    assert list(info["singular"]) == [True, True, True] and list(info["converged"]) == [True, True, True]
    assert list(info["pooled"]) == [True, True, False]
    assert set(pd.read_csv(written["fixed_effects"])["m"]) == {2}
    warnings = gather_warnings({}, info, pd.read_csv(written["fixed_effects"]))
    assert [w.split(":")[0] for w in warnings if "boundary (singular) fit" in w] == ["fit 1", "fit 2", "fit listwise"]
    assert model_info_section(info).count('<tr class="flagged">') == 3


def test_on_failed_fit_is_stop_or_warn():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["pooling"]["on_failed_fit"] == "stop"
    config["pooling"]["on_failed_fit"] = "ignore"
    assert schema_problem(config, schema) == "config key pooling.on_failed_fit: 'ignore' is not one of ['stop', 'warn']"


def test_workflow_stops_or_warns_on_a_failed_fit(tmp_path, small):
    """External imputations, the second with its imputed ses cells a million times too large (observed cells
    as in the data, which the start-up check requires): its fit fails; stop, then warn with the fits kept."""
    missing = small.copy()
    holes = np.random.default_rng(0).random(len(small)) < 0.1
    missing.loc[holes, "ses"] = np.nan
    missing.to_csv(tmp_path / "missing.csv", index=False)
    for k in (1, 2, 3):
        imputed = small.assign(ses=small["ses"].where(~holes, small["ses"] + 0.1 * k))
        if k == 2:   # max|grad| 1.3 at the best of 10 attempts, against lme4's 0.002
            imputed = imputed.assign(ses=imputed["ses"].where(~holes, imputed["ses"] * 1e6))
        imputed.to_csv(tmp_path / f"imp{k}.csv", index=False)
    config = {"scenario": "failed", "data": {"source": "missing.csv"}, "model": {"formula": FORMULA},
              "imputation": {"method": "external", "files": ["imp*.csv"]}}
    stopped = run_workflow(tmp_path, config)
    assert stopped.returncode != 0
    said = [line for line in stopped.stderr.splitlines() if line.startswith("mlmi:")]
    assert len(said) == 1 and said[0].startswith(
        "mlmi: 1 of 3 fits did not converge and pooling.on_failed_fit is stop: imputation 2 "
        "(results/failed/fits/imp_2.json): no attempt of"), stopped.stderr[-3000:]
    assert not list((tmp_path / "results" / "failed").glob("pooled/*.csv"))

    warned = run_workflow(tmp_path, {**config, "pooling": {"on_failed_fit": "warn"}})
    assert warned.returncode == 0, warned.stderr[-3000:]
    results = tmp_path / "results" / "failed"
    page = (results / "report.html").read_text()
    assert "<li><b>3</b> imputed data sets, 2 pooled</li>" in page
    first = page.index('<section id="warnings">')
    assert page.index("<section", first + 1) > page.index("imputation 2 was left out of the pooled results", first)
    assert page.index("imputation 2 was left out") < page.index("fit 2: Model failed to converge")
    assert set(pd.read_csv(results / "pooled" / "fixed_effects.csv")["m"]) == {2}
    info = pd.read_csv(results / "pooled" / "model_info.csv", dtype={"imputation": str})
    assert list(info["pooled"]) == [True, False, True, False]
    shown = summary(results)   # mlmi summary: the left-out imputation first among the warnings, AIC of the pooled
    assert shown.split("Warnings:\n")[1].startswith("  imputation 2 was left out of the pooled results")
    assert f"AIC = {info.loc[[0, 2], 'aic'].mean():.1f} (mean over 2 imputations)" in shown
