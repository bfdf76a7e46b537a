"""Bad inputs are caught before any job, each with one line naming the file, key or column."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.inputs import InputError, check_inputs, imputation_files, natural_key, schema_problem

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
SCHEMA = yaml.safe_load((CONFIG / "schema.yaml").read_text())
FORMULA = "y ~ x + (1 + x | g)"


def frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": np.repeat(np.arange(8), n // 8), "x": rng.normal(size=n), "y": rng.normal(size=n)})


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A working directory with incomplete data and three imputed files, and a config for them."""
    monkeypatch.chdir(tmp_path)
    data = frame()
    data.loc[[1, 7], "x"] = np.nan
    data.to_csv("data.csv", index=False)
    for k in (1, 2, 10):
        frame(seed=k).to_csv(f"imp{k}.csv", index=False)
    config = copy.deepcopy(DEFAULT)
    config["data"]["source"] = "data.csv"
    config["model"]["formula"] = FORMULA
    config["imputation"].update(method="external", files=["imp*.csv"])
    return config


def message(config) -> str:
    with pytest.raises(InputError) as error:
        check_inputs(config)
    assert "\n" not in str(error.value)          # one line
    return str(error.value)


def test_good_inputs_give_the_files_in_natural_order(user):
    assert check_inputs(user) == ["imp1.csv", "imp2.csv", "imp10.csv"]
    assert sorted(["imp10.csv", "imp2.csv", "imp1.csv"], key=natural_key) == ["imp1.csv", "imp2.csv", "imp10.csv"]
    assert imputation_files(["imp2.csv", "imp1.csv"]) == ["imp2.csv", "imp1.csv"]   # a list keeps its order


def test_default_config_passes():
    assert check_inputs(DEFAULT) == []
    assert not list(__import__("jsonschema").Draft202012Validator(SCHEMA).iter_errors(DEFAULT))


def test_missing_data_file(user):
    user["data"]["source"] = "nothere.csv"
    assert message(user).startswith("nothere.csv: no such file")


def test_listed_imputed_file_missing(user):
    user["imputation"]["files"] = ["imp1.csv", "imp3.csv"]
    assert message(user) == "imputation.files: imp3.csv: no such file"


def test_glob_matching_nothing(user):
    user["imputation"]["files"] = ["other*.parquet"]
    assert "the glob 'other*.parquet' matches no file" in message(user)


def test_imputed_columns_differ(user):
    frame(seed=2).rename(columns={"x": "x2"}).to_csv("imp2.csv", index=False)
    assert message(user).startswith("imp2.csv: columns ['g', 'x2', 'y'] differ from imp1.csv's")


def test_imputed_row_counts_differ(user):
    frame(seed=10).head(32).to_csv("imp10.csv", index=False)
    assert message(user).startswith("imp10.csv: 32 rows, but imp1.csv has 40")


def test_model_variable_absent(user):
    user["model"]["formula"] = "y ~ x + z + (1 + x | g)"
    text = message(user)
    assert text.startswith("data.csv: the fixed part 'x + z' of model.formula cannot be built") and "z" in text
    user["model"]["formula"] = "y ~ x + (1 + x | school)"
    assert message(user).startswith("data.csv: model.formula uses ['school'], not among the columns")


def test_imputed_file_with_missing_values(user):
    holes = frame(seed=2)
    holes.loc[3, "y"] = np.nan
    holes.to_csv("imp2.csv", index=False)
    assert message(user) == "imp2.csv: missing values left in model variables ['y']; give completed data sets"


def test_grouping_column_with_a_single_level(user):
    frame().assign(g=1).to_csv("data.csv", index=False)
    assert "grouping column 'g' has a single level" in message(user)


def test_external_needs_the_incomplete_data_and_two_files(user):
    user["imputation"]["files"] = ["imp1.csv"]
    assert "pooling needs at least 2" in message(user)
    user["data"]["source"] = "simulate"
    assert "imputation.method external needs data.source" in message(user)


def test_unknown_file_type_and_bad_formula(user):
    user["data"]["source"] = "data.xlsx"
    assert "unknown file type '.xlsx'" in message(user)
    user["model"]["formula"] = "y ~ x"
    assert message(user).startswith("model.formula")


def test_imputation_settings_name_columns_of_user_data(user):
    user["imputation"].update(method="miceforest")        # exclude: [schid, meanses] from the default
    assert "imputation.exclude lists ['schid', 'meanses']" in message(user)


def test_schema_problem_is_one_line_naming_the_key():
    bad = copy.deepcopy(DEFAULT)
    bad["imputation"]["m"] = 1
    assert schema_problem(bad, SCHEMA) == "config key imputation.m: 1 is less than the minimum of 2"
    bad = copy.deepcopy(DEFAULT)
    bad["model"]["formla"] = "y ~ (1 | g)"
    assert "config key model: Additional properties are not allowed ('formla' was unexpected)" == \
        schema_problem(bad, SCHEMA)


def test_missingness_that_cannot_work_is_found_before_any_job():
    bad = copy.deepcopy(DEFAULT)
    bad["missingness"].update(mechanism="MAR", prob={"ses": 0.3}, predictors={"ses": ["nothere"]})
    text = message(bad)
    assert text.startswith("missingness: ") and "nothere" in text
    bad["missingness"]["predictors"] = {"ses": ["mathach"]}
    assert check_inputs(bad) == []


def test_impossible_generator_settings_are_found_before_any_job():
    bad = copy.deepcopy(DEFAULT)
    bad["data"]["simulate"]["students_mean"] = 80
    assert message(bad).startswith("data.simulate: ")
