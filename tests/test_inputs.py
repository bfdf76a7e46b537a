"""Bad inputs are caught before any job, each with one line naming the file, key or column."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.inputs import InputError, check_inputs, imputation_files, imputation_roles, natural_key, schema_problem

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
    user["imputation"].update(method="miceforest")        # exclude: auto, i.e. the grouping column g
    assert check_inputs(user) == []
    user["imputation"].update(exclude=["schid", "meanses"])
    assert "imputation.exclude lists ['schid', 'meanses']" in message(user)


def test_level2_auto_is_found_in_the_data(user):
    """auto: the columns not excluded that are constant within every group in their observed values."""
    data = pd.read_csv("data.csv")
    data["size"] = (data["g"] * 10.0).mask(data.index % 7 == 0)       # level 2, with holes
    data["gx"] = data.groupby("g")["x"].transform("mean")              # a cluster mean: level 2 by its values
    data.to_csv("data.csv", index=False)
    user["imputation"].update(method="miceforest")
    assert imputation_roles(user)["level2"] == ["size", "gx"]
    user["imputation"]["cluster_means"] = {"gx": "x"}                  # recomputed, so not imputed at level 2
    assert imputation_roles(user)["level2"] == ["size"]
    user["imputation"]["level2"] = ["gx"]                              # a list is taken as given
    assert imputation_roles(user)["level2"] == ["gx"]
    assert imputation_roles({**DEFAULT, "imputation": {**DEFAULT["imputation"], "exclude": ["schid"]}})["level2"] \
        == ["size", "schtype", "meanses"]                               # simulated data: found on a trial data set
    assert imputation_roles(DEFAULT)["level2"] == ["size", "schtype"]


@pytest.mark.parametrize("means, level2, exclude, problem", [
    ({"gx": "z"}, "auto", "auto", "imputation.cluster_means gx: z: ['z'] not among the columns"),
    ({"gx": "x"}, "auto", ["g", "gx"], "'gx' is in imputation.exclude; take it out (a recomputed mean predicts)"),
    ({"gx": "x"}, "auto", ["g", "x"], "its level-1 column 'x' is in imputation.exclude; take it out"),
    ({"gx": "x"}, ["gx"], "auto", "'gx' is in imputation.level2 too; a cluster mean is recomputed, not imputed"),
    ({"gx": "size"}, "auto", "auto", "'size' is a cluster mean or level 2 itself"),
    ({"gx": "x"}, ["nope"], "auto", "imputation.level2 lists ['nope'], not among the columns"),
])
def test_cluster_means_and_level2_are_checked(user, means, level2, exclude, problem):
    data = pd.read_csv("data.csv").assign(size=lambda d: d["g"] * 10.0)
    data.assign(gx=data.groupby("g")["x"].transform("mean")).to_csv("data.csv", index=False)
    user["imputation"].update(method="multilevel", cluster_means=means, level2=level2, exclude=exclude)
    assert problem in message(user)


def changed(path: str, value) -> dict:
    """The default config with the dotted key ``path`` set to ``value`` (added if new)."""
    config = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value
    return config


@pytest.mark.parametrize("path, value, expected", [
    ("imputation.m", 1, "config key imputation.m: 1 is less than the minimum of 2; "
                        "give a whole number that is at least 2"),
    ("imputation.m", 2.5, "config key imputation.m: 2.5 is not of type 'integer'; give a whole number"),
    ("missingness.prob.ses", -0.1, "config key missingness.prob.ses: -0.1 is less than the minimum of 0; "
                                   "give a number that is at least 0 and below 1"),
    ("data.simulate.minority_rate", 1, "config key data.simulate.minority_rate: 1 is greater than or equal to the "
                                       "maximum of 1; give a number that is above 0 and below 1"),
    ("imputation.exclude", 5, "config key imputation.exclude: 5 is not of type 'array', 'string'; give a list or text"),
    ("missingness.mechanism", "mcar", "config key missingness.mechanism: 'mcar' is not one of ['MCAR', 'MAR', 'MNAR']; "
                                      "did you mean 'MCAR'?"),
    ("pooling.on_failed_fit", "ignore", "config key pooling.on_failed_fit: 'ignore' is not one of ['stop', 'warn']"),
    ("model.formla", "y ~ (1 | g)", "config key model: Additional properties are not allowed ('formla' was "
                                    "unexpected); did you mean 'formula'?"),
    ("data.simulate.N_SCHOOLS", 40, "config key data.simulate: Additional properties are not allowed ('N_SCHOOLS' was "
                                    "unexpected); did you mean 'n_schools'?"),
    ("model.weights", "w", "config key model: Additional properties are not allowed ('weights' was unexpected); "
                           "the keys allowed here are formula, reml (config/schema.yaml describes each)"),
    ("scenario", "a b", "config key scenario: 'a b' does not match '^[A-Za-z0-9_.-]+$'; "
                        "expected: name of the study; outputs go to results/<scenario>/"),
])
def test_schema_problem_is_one_line_naming_the_key_and_what_to_write(path, value, expected):
    assert schema_problem(changed(path, value), SCHEMA) == expected


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


# ---- data a model cannot use: empty files, text among numbers, nothing observed, too few groups ----

def test_empty_blank_and_header_only_files(user, tmp_path):
    for text in ("", "\n\n"):
        (tmp_path / "data.csv").write_text(text)
        assert message(user) == ("data.csv: the file is empty; give a header row of column names and one row "
                                 "per observation")
    (tmp_path / "data.csv").write_text("g,x,y\n")
    assert message(user) == "data.csv: column names but no rows of data; give one row per observation"
    frame().head(0).to_parquet("data.parquet")
    user["data"]["source"] = "data.parquet"
    assert message(user) == "data.parquet: column names but no rows of data; give one row per observation"
    frame().to_parquet("data.parquet")
    (tmp_path / "imp2.csv").write_text("g,x,y\n")
    assert message(user) == "imp2.csv: column names but no rows of data; give one row per observation"


def csv_lines(lines: list[str]) -> None:
    """data.csv from its lines, so a test knows each value's line number by counting."""
    Path("data.csv").write_text("\n".join(lines) + "\n")


def test_text_among_numbers_names_its_line_counting_the_header(user):
    rows = [f"{g},{x},{y}" for g, x, y in frame().itertuples(index=False)]
    csv_lines(["g,x,y", *rows[:3], "1,.,0.5", *rows[3:20], "2,.,0.1", *rows[20:]])
    assert message(user) == ("data.csv: column 'x' holds numbers, but line 5 (counting the header) has '.' "
                             "(and 1 more such cell); add '.' to data.na_values if it means missing")
    # blank lines (pandas skips them) and a quoted cell over two lines still count as the editor's lines
    csv_lines(["g,x,y,note", "", *[row + ",ok" for row in rows[:3]], '1,0.2,0.3,"two', 'lines"', "",
               "1,missing,0.5,ok", *[row + ",ok" for row in rows[4:]]])
    assert message(user) == ("data.csv: column 'x' holds numbers, but line 9 (counting the header) has 'missing'; "
                             "add 'missing' to data.na_values if it means missing")
    csv_lines(["g,x,y", *rows[:6], "2,\"12,5\",0.1", *rows[7:]])
    assert message(user) == ("data.csv: column 'x' holds numbers, but line 8 (counting the header) has '12,5'; "
                             "correct it to a number in the file")


def test_a_listed_missing_value_code_is_missing_not_text(user):
    rows = [f"{g},{x},{y}" for g, x, y in frame().itertuples(index=False)]
    csv_lines(["g,x,y", *rows[:3], "1,.,0.5", *rows[4:]])
    user["data"]["na_values"] = ["."]
    assert check_inputs(user) == ["imp1.csv", "imp2.csv", "imp10.csv"]


def test_parquet_rows_are_counted_from_one(user):
    frame().astype({"y": str}).assign(y=lambda d: d["y"].mask(d.index == 6, "?")).to_parquet("data.parquet")
    user["data"]["source"] = "data.parquet"
    assert message(user) == ("data.parquet: column 'y' holds numbers, but row 7 has '?'; "
                             "add '?' to data.na_values if it means missing")


def test_text_is_a_category_except_for_the_outcome_and_random_slopes(user):
    data = frame().assign(sex=["girl", "boy"] * 20)
    data.to_csv("data.csv", index=False)
    user["imputation"]["method"] = "miceforest"
    user["model"]["formula"] = "y ~ x + sex + (1 + x | g)"
    assert check_inputs(user) == []
    user["model"]["formula"] = "y ~ x + (1 + sex | g)"
    assert message(user) == ("data.csv: the random slope 'sex' must be numbers, but line 2 (counting the header) has "
                             "'girl' (and 39 more such cells); recode it as numbers, or model another column")
    user["model"]["formula"] = "sex ~ x + (1 + x | g)"
    assert message(user).startswith("data.csv: the outcome 'sex' must be numbers, but line 2 (counting the header)")
    data.assign(y=data["y"].astype(object).mask(data.index == 0, "high")).to_csv("data.csv", index=False)
    user["model"]["formula"] = FORMULA       # one text cell in a numeric outcome: the numbers' message
    assert message(user) == ("data.csv: column 'y' holds numbers, but line 2 (counting the header) has 'high'; "
                             "correct it to a number in the file")


def test_a_stray_text_cell_in_an_imputation_predictor_or_an_imputed_file(user):
    user["imputation"]["method"] = "miceforest"
    frame().assign(size=[*range(39), "n/k"]).to_csv("data.csv", index=False)    # not in the model, but imputes
    assert message(user).startswith("data.csv: column 'size' holds numbers, but line 41 (counting the header) "
                                    "has 'n/k'")
    user["imputation"]["exclude"] = ["g", "size"]                                 # excluded: carried, never used
    assert check_inputs(user) == []
    user["imputation"].update(method="external", exclude="auto")
    frame().to_csv("data.csv", index=False)
    frame(seed=2).astype({"y": object}).assign(y=lambda d: d["y"].mask(d.index == 0, "-")).to_csv("imp2.csv",
                                                                                                 index=False)
    assert message(user) == ("imp2.csv: column 'y' holds numbers, but line 2 (counting the header) has '-'; "
                             "add '-' to data.na_values if it means missing")


def test_all_missing_variable_constant_outcome_and_one_group(user):
    frame().assign(x=np.nan).to_csv("data.csv", index=False)
    assert message(user) == ("data.csv: model variable 'x' is missing in all 40 rows; check the column "
                             "(and data.na_values), or leave it out of model.formula")
    frame().assign(y=[2.0, np.nan] * 20).to_csv("data.csv", index=False)
    assert message(user) == ("data.csv: the outcome 'y' is 2.0 in every row that has a value; a model needs an "
                             "outcome that varies: check the response of model.formula")
    frame().assign(g="S1").to_csv("data.csv", index=False)
    assert message(user) == ("data.csv: grouping column 'g' has a single level ('S1'); a multilevel model needs "
                             "at least 2 groups: check the grouping factor of model.formula")


def test_groups_of_one_warn_in_a_random_slope_model_only(user):
    extra = pd.DataFrame({"g": [20, 9], "x": [0.1, 0.2], "y": [1.0, 2.0]})
    pd.concat([frame(), extra]).to_csv("data.csv", index=False)
    said = []
    assert check_inputs(user, warn=said.append) == ["imp1.csv", "imp2.csv", "imp10.csv"]
    assert said == ["data.csv: 2 of 10 groups of 'g' have a single observation (first: 9), too few to show their "
                    "own random slope of 'x'; the run goes on, but look for a singular fit (or drop those groups)"]
    with pytest.warns(UserWarning, match="2 of 10 groups of 'g' have a single observation"):
        check_inputs(user)
    user["model"]["formula"] = "y ~ x + (1 | g)"
    check_inputs(user, warn=said.append)
    assert len(said) == 1


@pytest.mark.parametrize("formula, expected", [
    ("y ~ x + (1 | g) + (1 | h)", "crossed random effects of 'g' and 'h' are not supported (mlmi fits one grouping "
                                  "factor with correlated random intercept and slopes, such as '(1 + x | school)'); "
                                  "keep one grouping factor"),
    ("y ~ x + (1 + x | g) + (1 | h) + (0 + x | g)", "crossed random effects of 'g' and 'h' are not supported"),
    ("y ~ x + (1 | h/g)", "nested grouping 'h/g' (g within h) is not supported (mlmi fits one grouping factor with "
                          "correlated random intercept and slopes, such as '(1 + x | school)'); keep one level: "
                          "'(1 | h)', or '(1 | g)' if g ids are unique across h"),
    ("y ~ x + (1 | h:g)", "grouping by the interaction 'h:g' is not supported (mlmi fits one grouping factor with "
                          "correlated random intercept and slopes, such as '(1 + x | school)'); make a column with one "
                          "id per combination of h and g and group by it"),
    # the parser's own messages where the grouping is not the problem
    ("y ~ x + (1 | g) + (0 + x | g)", "2 random-effects terms; statsmodels MixedLM fits one grouping factor"),
    ("y ~ x + (1 | `a b`) + (1 | h)", "2 random-effects terms"),
    ("y ~ x + (1 | g", "unbalanced parentheses (1 '(' and 0 ')'); close every '('"),
])
def test_random_effects_mlmi_cannot_fit_say_what_it_fits(user, formula, expected):
    user["model"]["formula"] = formula
    assert message(user).startswith(f"model.formula {formula!r}: {expected}")


def test_multilevel_excludes_nothing_by_default_and_refuses_model_columns(user):
    user["imputation"].update(method="multilevel")                     # exclude: auto
    assert imputation_roles(user)["exclude"] == [] and check_inputs(user) == []
    assert imputation_roles({**DEFAULT, "imputation": {**DEFAULT["imputation"], "method": "multilevel"}})[
        "exclude"] == []                                                 # not the vignette's [schid, meanses]
    user["imputation"]["exclude"] = ["g"]
    assert message(user) == ("data.csv: imputation.exclude lists ['g'], which model.formula uses and the multilevel "
                             "method needs (the grouping column is its clusters): take them out, or set "
                             "imputation.exclude: auto")
