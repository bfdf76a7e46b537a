"""miceforest keeps a column's kind: a 0/1 outcome or covariate is imputed as 0 or 1 (never 0.37), a count as a
whole non-negative number; and the start-up checks let a GLMM's missing 0/1 or count response be imputed."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import mlmi.impute.miceforest
from mlmi.impute.miceforest import impute_miceforest
from mlmi.run.inputs import check_inputs
from test_glmm_config import message

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
KINDS = {"passed": "binary", "visits": "count", "smoker": "binary", "absences": "count"}


def incomplete(seed: int = 1) -> pd.DataFrame:
    """40 schools of 15 pupils: a 0/1 outcome and covariate, a count outcome and covariate (Poisson, many zeros),
    a continuous x, and one school-level count (size), each 25% missing (size for whole schools); numeric
    columns with NaN are float64, as pandas reads them."""
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(1, 41), 15)
    u = rng.normal(0.0, 0.5, 40)[school - 1]
    x = rng.normal(size=len(school))
    data = pd.DataFrame({"school": school, "x": x,
                         "smoker": (rng.random(len(school)) < 0.3).astype(float),
                         "absences": rng.poisson(np.exp(0.2 + 0.4 * x + u)).astype(float),
                         "size": rng.poisson(300, 40)[school - 1].astype(float)})
    data["passed"] = (rng.random(len(school)) < 1 / (1 + np.exp(-(0.3 * x - 0.8 * data["smoker"] + u)))).astype(float)
    data["visits"] = rng.poisson(np.exp(0.5 - 0.3 * x + u)).astype(float)
    for column in ("x", *KINDS):
        data.loc[rng.random(len(data)) < 0.25, column] = np.nan
    data.loc[data["school"].isin(rng.choice(40, 8, replace=False) + 1), "size"] = np.nan
    return data


def imputed_values(data: pd.DataFrame, completed: pd.DataFrame, column: str) -> np.ndarray:
    return completed.loc[data[column].isna(), column].to_numpy()


@pytest.mark.parametrize("bootstrap, cluster_predictors", [(False, False), (True, True)])
def test_binary_and_count_columns_keep_their_kind(bootstrap, cluster_predictors):
    data = incomplete()
    completed, _ = impute_miceforest(data, "school", seed=7, iterations=3, exclude=["school"], level2=["size"],
                                     bootstrap=bootstrap, cluster_predictors=cluster_predictors)
    assert completed[list(KINDS)].notna().all().all() and completed["size"].notna().all()
    for column, kind in KINDS.items():
        values = imputed_values(data, completed, column)
        assert set(values) <= set(data[column].dropna()), column   # only values seen in the column
        if kind == "binary":
            assert set(values) == {0.0, 1.0}, column                # both occur: drawn, not the mode
        else:
            assert (values >= 0).all() and (values == np.round(values)).all(), column
    sizes = imputed_values(data, completed, "size")
    assert (sizes == np.round(sizes)).all() and set(sizes) <= set(data["size"].dropna())


def test_without_mean_matching_the_same_imputation_gives_fractions(monkeypatch):
    """The check above can fail: with 0 candidates miceforest imputes its raw predictions (a 0/1 outcome as 0.37)."""
    monkeypatch.setattr(mlmi.impute.miceforest, "MEAN_MATCH",
                        {"mean_match_strategy": "normal", "mean_match_candidates": 0})
    data = incomplete()
    completed, _ = impute_miceforest(data, "school", seed=7, iterations=3, exclude=["school"])
    for column in KINDS:
        values = imputed_values(data, completed, column)
        assert (values != np.round(values)).any(), column


def test_a_listed_binary_column_is_imputed_as_a_category_and_keeps_its_dtype():
    data = incomplete()
    completed, _ = impute_miceforest(data, "school", seed=3, iterations=2, exclude=["school"],
                                     categorical=["passed", "smoker"])
    for column in ("passed", "smoker"):
        assert set(imputed_values(data, completed, column)) == {0.0, 1.0}
    assert (completed.dtypes == data.dtypes).all()


@pytest.fixture
def glmm_config(tmp_path, monkeypatch):
    """A working directory with incomplete() as counts.csv, and a config for it (family set by each test)."""
    monkeypatch.chdir(tmp_path)
    incomplete().to_csv("counts.csv", index=False)
    config = copy.deepcopy(DEFAULT)
    config["data"]["source"] = "counts.csv"
    config["model"].update(reml=False)
    return config


@pytest.mark.parametrize("formula, family", [("passed ~ x + smoker + (1 | school)", "binomial"),
                                             ("visits ~ x + absences + (1 | school)", "poisson")])
def test_a_missing_binary_or_count_response_is_imputed_by_miceforest(glmm_config, formula, family):
    glmm_config["model"].update(formula=formula, family=family)
    assert check_inputs(glmm_config) == []


def test_a_response_with_trials_is_not_imputed_apart_from_them(glmm_config):
    data = pd.read_csv("counts.csv")
    data["trials"] = data["visits"].fillna(0) + 3
    data.to_csv("counts.csv", index=False)
    glmm_config["model"].update(formula="cbind(visits, trials - visits) ~ x + (1 | school)", family="binomial")
    assert message(glmm_config).startswith("counts.csv: 'visits' has missing values; mlmi imputes a 0/1 or count "
                                            "response, not one with trials")


def test_the_multilevel_sampler_is_refused_for_a_glmm(glmm_config):
    glmm_config["model"].update(formula="passed ~ x + (1 | school)", family="binomial")
    glmm_config["imputation"]["method"] = "multilevel"
    assert message(glmm_config).startswith("imputation.method multilevel: its sampler imputes for a linear mixed "
                                            "model, and model.family is binomial")
