"""lme4's design checks (issue 12, items 5 and 6) against lme4's own verdicts on the same data.

lme4_checks.json holds what lme4 1.1-31 does with each case (tests/data/lme4_checks.R made it
and the checks_*.csv files): which aliased columns it drops and its estimates without them, or
the error with which its lmerControl() checks refuse the random effects.
"""
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.fit.formula import parse_formula
from mlmi.fit.lmer import fit_mixed
from mlmi.fit.lmer_checks import RANK_TOL, aliased_columns, random_effects_problem, term_sizes
from mlmi.fit.random_design import random_effects
from mlmi.run import io
from mlmi.run import stages
from mlmi.run.inputs import InputError, check_inputs

DATA = Path(__file__).parent / "data"
LME4 = json.loads((DATA / "lme4_checks.json").read_text())
RANK_CASES = ["rank_twice", "rank_constant", "rank_dummies", "rank_dummies_first", "rank_two"]
REFUSED = ["pairs_slope", "singletons", "one_group"]
FITTED = ["pairs_slope_only", "pairs_intercept"]


def data_of(case: str) -> pd.DataFrame:
    return pd.read_csv(DATA / LME4[case]["data"])


@pytest.fixture(scope="module")
def rank_fits():
    return {case: fit_mixed(data_of(case), LME4[case]["formula"]) for case in RANK_CASES}


@pytest.mark.parametrize("case", RANK_CASES)
def test_aliased_columns_are_dropped_as_lme4_drops_them(rank_fits, case):
    """Same columns dropped, same message, and lme4's estimates of the columns kept (measured: fixed
    effects within 2e-6 relative, SEs within 1.3e-5, REML criterion within 1e-8; the worst is the
    singular rank_two)."""
    ref, fit = LME4[case], rank_fits[case]
    assert fit["dropped"] == ref["dropped"]
    assert [row["term"] for row in fit["fixed_effects"]] == list(ref["fixef"]) == fit["vcov"]["terms"]
    np.testing.assert_allclose([row["estimate"] for row in fit["fixed_effects"]], list(ref["fixef"].values()),
                               rtol=1e-5)
    np.testing.assert_allclose([row["std_error"] for row in fit["fixed_effects"]], list(ref["se"].values()),
                               rtol=1e-4)
    assert fit["reml_criterion"] == pytest.approx(ref["reml_criterion"], abs=1e-6)
    rank_warnings = [w for w in fit["convergence"]["warnings"] if w.startswith(ref["messages"][0])]
    assert len(rank_warnings) == 1 and all(repr(name) in rank_warnings[0] for name in ref["dropped"])
    assert fit["npar"] == len(ref["fixef"]) + len(ref["theta"]) + 1       # dropped columns are no parameters


def test_a_column_goes_when_nearly_a_combination_of_those_before_it():
    """R's qr(X, tol = 1e-7) rule: the residual norm against the earlier columns, relative to the column's own."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=50)
    base = np.column_stack([np.ones(50), x])
    for relative, dropped in [(RANK_TOL / 10, [2]), (RANK_TOL * 10, [])]:
        noise = rng.normal(size=50)
        noise -= base @ np.linalg.lstsq(base, noise, rcond=None)[0]          # orthogonal to the earlier columns
        column = 3 * x + 1
        column = column + relative * np.linalg.norm(column) * noise / np.linalg.norm(noise)
        assert aliased_columns(np.column_stack([base, column])) == dropped
    assert aliased_columns(np.column_stack([base, np.zeros(50), x])) == [2, 3]    # zeros always; a repeat


@pytest.mark.parametrize("case", REFUSED)
def test_unidentifiable_random_effects_are_refused_with_lme4s_words(case):
    with pytest.raises(ValueError) as raised:
        fit_mixed(data_of(case), LME4[case]["formula"])
    message = str(raised.value)
    assert message.startswith(LME4[case]["error"]) and "\n" not in message


@pytest.mark.parametrize("case", FITTED)
def test_random_effects_lme4_identifies_are_fitted(case):
    """Pairs of rows identify a random intercept, or a random slope alone (40 effects < 80 rows), as in lme4."""
    fit = fit_mixed(data_of(case), LME4[case]["formula"])
    np.testing.assert_allclose([row["estimate"] for row in fit["fixed_effects"]], list(LME4[case]["fixef"].values()),
                               rtol=1e-5)


@pytest.mark.parametrize("case", REFUSED + FITTED)
def test_the_start_up_verdict_is_the_fits(case):
    data, formula = data_of(case), parse_formula(LME4[case]["formula"])
    problem = random_effects_problem(len(data), term_sizes(random_effects(data, formula)))
    assert (problem is None) == (LME4[case]["error"] is None)
    assert problem is None or problem.startswith(LME4[case]["error"])


def test_start_up_stops_on_the_users_data_counting_every_row(tmp_path, monkeypatch):
    """40 groups of 2 rows with a random slope: refused before any job, although x has holes (each
    imputed data set has all 80 rows, so all 80 count)."""
    monkeypatch.chdir(tmp_path)
    data = data_of("pairs_slope")
    data.loc[[3, 10], "x"] = np.nan
    data.to_csv("data.csv", index=False)
    config = copy.deepcopy(yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text()))
    config["data"]["source"] = "data.csv"
    config["model"]["formula"] = LME4["pairs_slope"]["formula"]
    with pytest.raises(InputError) as raised:
        check_inputs(config)
    assert str(raised.value).startswith(f"data.csv: {LME4['pairs_slope']['error']}")
    config["model"]["formula"] = LME4["pairs_intercept"]["formula"]
    assert check_inputs(config) == []


def test_the_fit_job_logs_the_dropped_columns(tmp_path, caplog):
    """The fit job's log, which the report reads, has lme4's message; the record names the column."""
    data_to = tmp_path / "data.parquet"
    io.write_parquet(data_of("rank_twice"), data_to)
    stages.fit(data_to, tmp_path / "fit.json", model={"formula": LME4["rank_twice"]["formula"], "reml": True},
               label="imputation 1")
    assert io.read_json(tmp_path / "fit.json")["dropped"] == ["x2"]
    assert f"imputation 1: {LME4['rank_twice']['messages'][0]}: 'x2'" in caplog.text
