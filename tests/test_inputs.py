"""Bad inputs are caught before any job, each with one line naming the file, key or column."""
import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlmi.run.inputs import InputError, check_inputs, imputation_roles, schema_problem
from mlmi.run.plan import imputation_files, natural_key

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
SCHEMA = yaml.safe_load((CONFIG / "schema.yaml").read_text())
FORMULA = "y ~ x + (1 + x | g)"


def frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": np.repeat(np.arange(8), n // 8), "x": rng.normal(size=n), "y": rng.normal(size=n)})


def imputed(k: int) -> pd.DataFrame:
    """The k-th completed copy of the fixture's data: its two missing x values imputed."""
    return frame().assign(x=lambda d: d["x"].mask(d.index.isin([1, 7]), 0.1 * k))


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A working directory with incomplete data and three imputed files, and a config for them."""
    monkeypatch.chdir(tmp_path)
    data = frame()
    data.loc[[1, 7], "x"] = np.nan
    data.to_csv("data.csv", index=False)
    for k in (1, 2, 10):
        imputed(k).to_csv(f"imp{k}.csv", index=False)
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
    imputed(10).head(32).to_csv("imp10.csv", index=False)
    assert message(user).startswith("imp10.csv: 32 rows, but data.csv has 40")
    for k in (1, 2, 10):                                 # every file one row short: still the data's count
        imputed(k).head(39).to_csv(f"imp{k}.csv", index=False)
    assert message(user) == ("imp1.csv: 39 rows, but data.csv has 40; every imputed data set must have the rows "
                             "of the incomplete data, in its order: give the files imputed from data.csv")


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
    assert message(user) == ("imp2.csv: missing values left in model variables ['y'], the first of 'y' on line 5 "
                             "(counting the header); give completed data sets")
    imputed(2).assign(g=lambda d: d["g"].mask(d.index >= 38)).to_csv("imp2.csv", index=False)   # no group id
    assert message(user) == ("imp2.csv: missing values left in model variables ['g'], the first of 'g' on line 40 "
                             "(counting the header) (and 1 more row); give completed data sets")


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
    ("model.offset", "w", "config key model: Additional properties are not allowed ('offset' was unexpected); "
                          "the keys allowed here are formula, reml, family, link, nagq, weights (config/schema.yaml "
                          "describes each)"),
    ("scenario", "a b", "config key scenario: 'a b' is not allowed here; expected: name of the study, a folder name: "
                        "letters, digits, '_', '.' and '-', not dots alone; outputs go to results/<scenario>/"),
    ("scenario", "..", "config key scenario: '..' is not allowed here; expected: name of the study, a folder name: "
                       "letters, digits, '_', '.' and '-', not dots alone; outputs go to results/<scenario>/"),
    ("data.source", "x.txt", "config key data.source: 'x.txt' is not allowed here; expected: 'simulate' for the "
                             "built-in hsb-like generator, or the path (relative to the working directory) of your "
                             "own data with its missing values: a .csv or .parquet file"),
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
    imputed(1).to_parquet("data.parquet")
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
    csv_lines(["g,x,y", rows[0], "0,.,0.5", *rows[2:]])
    for k in (1, 2, 10):
        frame().assign(x=lambda d: d["x"].mask(d.index == 1, 0.1 * k),
                       y=lambda d: d["y"].mask(d.index == 1, 0.5)).to_csv(f"imp{k}.csv", index=False)
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
    frame().to_csv("imp1.csv", index=False)                                       # the data, complete
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
    for k in (1, 2, 10):
        pd.concat([frame(), extra]).to_csv(f"imp{k}.csv", index=False)
    said = []
    assert check_inputs(user, warn=said.append) == ["imp1.csv", "imp2.csv", "imp10.csv"]
    assert said == ["data.csv: 2 of 10 groups of 'g' have a single observation (first: 9), too few to show their "
                    "own random slope of 'x'; the run goes on, but look for a singular fit (or drop those groups)"]
    with pytest.warns(UserWarning, match="2 of 10 groups of 'g' have a single observation"):
        check_inputs(user)
    user["model"]["formula"] = "y ~ x + (1 | g)"
    check_inputs(user, warn=said.append)
    assert len(said) == 1


def with_classes(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with h, a class within each group g: 1 for its first 3 rows, 2 for the others (ids repeated
    across groups, as in (1 | g/h)), and k, a factor crossed with g (0 to 4 in every group)."""
    position = data.groupby("g").cumcount()
    return data.assign(h=np.where(position < 3, 1, 2), k=position)


@pytest.fixture
def classes(user):
    """The user's data and imputed files with the classes h and the crossed factor k."""
    for path in ("data.csv", "imp1.csv", "imp2.csv", "imp10.csv"):
        with_classes(pd.read_csv(path)).to_csv(path, index=False)
    return user


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g/h)", "y ~ x + (1 + x | g) + (1 | g:h)",
                                     "y ~ x + (1 | g) + (1 | k)", "y ~ x + (1 + x || g) + (1 | h:g)"])
@pytest.mark.parametrize("method", ["external", "miceforest"])
def test_several_grouping_factors_run_with_miceforest_and_external(classes, formula, method):
    classes["model"]["formula"] = formula
    classes["imputation"]["method"] = method
    assert check_inputs(classes) == ([] if method == "miceforest" else ["imp1.csv", "imp2.csv", "imp10.csv"])
    if method == "miceforest":      # every grouping column an id: excluded, never imputed, never level 2
        grouping = [c for c in ("g", "h", "k") if c in formula]
        assert imputation_roles(classes) == {"exclude": grouping, "categorical": [], "level2": []}


@pytest.mark.parametrize("formula, terms", [
    ("y ~ x + (1 | g/h)", "(1 | h:g), (1 | g)"),
    ("y ~ x + (1 | g) + (1 | k)", "(1 | g), (1 | k)"),
    ("y ~ x + (1 + x || g)", "(1 | g), (0 + x | g)"),
    ("y ~ x + (1 | g:h)", "(1 | g:h)"),
])
def test_the_multilevel_sampler_refuses_several_terms_naming_the_methods_that_take_them(classes, formula, terms):
    classes["model"]["formula"] = formula
    classes["imputation"]["method"] = "multilevel"
    assert message(classes) == (
        f"model.formula {formula!r}: random terms {terms}, but imputation.method multilevel models one grouping "
        "column with random intercept and slopes of plain columns, such as '(1 + x | school)'; for this formula set "
        "imputation.method: miceforest (every grouping column an id, the first one named its clusters), or impute "
        "elsewhere and give the files with imputation.method: external")


def test_each_grouping_column_is_checked(classes):
    classes["model"]["formula"] = "y ~ x + (1 | g/h)"
    data = pd.read_csv("data.csv")
    data.assign(h=data["h"].mask(data.index == 4)).to_csv("data.csv", index=False)
    assert message(classes).startswith("data.csv: grouping column 'h' is empty on line 6 (counting the header); a "
                                       "row without its group cannot be imputed within its cluster")
    data.assign(h=7).to_csv("data.csv", index=False)
    assert message(classes) == ("data.csv: grouping column 'h' has a single level (7); a multilevel model needs at "
                                "least 2 groups: check the grouping factor of model.formula")
    data.assign(h=np.arange(len(data))).to_csv("data.csv", index=False)   # every row its own class
    assert message(classes).startswith("data.csv: number of levels of each grouping factor must be < number of "
                                       "observations (problems: h:g): 40 groups in 40 rows")
    classes["model"]["formula"] = "y ~ x + (1 | g) + (1 | nowhere)"
    assert message(classes).startswith("data.csv: model.formula uses ['nowhere'], not among the columns")


def test_level2_follows_the_first_grouping_column_named(classes):
    data = pd.read_csv("data.csv")
    data.assign(s=data["g"] * 10.0, c=data["g"] * 10.0 + data["h"]).to_csv("data.csv", index=False)
    classes["imputation"]["method"] = "miceforest"
    classes["model"]["formula"] = "y ~ x + (1 | g/h)"
    assert imputation_roles(classes)["level2"] == ["s"]          # c is constant within classes only
    classes["model"]["formula"] = "y ~ x + (1 | h) + (1 | g)"   # h first: its clusters (each row's class id 1 or 2)
    assert imputation_roles(classes)["level2"] == []


def test_a_simulated_grouping_column_is_never_amputed():
    config = copy.deepcopy(DEFAULT)
    config["data"]["simulate"].update(n_schools=20, n_classes=3)
    config["model"]["formula"] = "mathach ~ ses + (1 | schid/classid)"
    assert check_inputs(config) == []
    assert imputation_roles(config)["exclude"] == ["schid", "meanses", "classid"]
    config["missingness"]["prob"]["classid"] = 0.1
    assert message(config) == ("missingness.prob: 'classid' is a grouping column of model.formula, an id that is never "
                               "made missing (nor imputed); take it out of missingness.prob")
    config["data"]["simulate"]["n_classes"] = 0
    del config["missingness"]["prob"]["classid"]
    assert message(config).startswith("the simulated data: model.formula uses ['classid'], not among the columns")


def test_comparisons_take_a_formula_of_one_term(classes):
    classes["model"]["formula"] = "y ~ x + (1 | g/h)"
    classes["pooling"]["compare"] = [{"name": "c", "formula": "y ~ (1 | g)"}]
    assert message(classes).startswith("pooling.compare: comparisons with nested models take a model.formula of one "
                                       "random term")


def test_an_unbalanced_formula_is_the_parsers_line(user):
    user["model"]["formula"] = "y ~ x + (1 | g"
    assert message(user) == "model.formula 'y ~ x + (1 | g': unbalanced parentheses (1 '(' and 0 ')'); close every '('"


def test_the_design_check_uses_every_row_not_the_first_two(user):
    """mitml's studentratings in its own order: the first rows miss a text predictor (issue 12, item 8)."""
    data = frame().assign(sex=["girl", "boy"] * 20)
    data.loc[:3, "sex"] = np.nan                       # rows 1-4 miss sex; x misses rows 2 and 8 as well
    data.loc[[1, 7], "x"] = np.nan
    data.to_csv("data.csv", index=False)
    user["imputation"].update(method="miceforest")
    user["model"]["formula"] = "y ~ x + sex + factor(g) + (1 + x | g)"
    assert check_inputs(user) == []
    data.assign(x=[np.nan, 1.0] * 20, sex=["girl", np.nan] * 20).to_csv("data.csv", index=False)   # no complete row
    assert check_inputs(user) == []


# ---- external imputations checked against the data (issue 12, item 3) ----

def test_an_observed_value_changed_in_one_imputed_file(user):
    imputed(2).assign(y=lambda d: d["y"] + 50).to_csv("imp2.csv", index=False)
    y = frame()["y"]
    assert message(user) == (f"imp2.csv: row 1 (line 2, counting the header) has y {y[0] + 50} where data.csv has "
                             f"{y[0]} (and 39 more rows); an imputed data set must keep the data's rows, in order, "
                             "and their observed values (numbers to a relative 1e-06): give the files imputed from "
                             "data.csv, in its row order")


def test_csv_round_off_is_not_a_change_but_a_sixth_digit_is(user):
    rounded = imputed(2).round({"y": 9})                                 # what a CSV of fewer digits keeps
    rounded.to_csv("imp2.csv", index=False)
    assert check_inputs(user) == ["imp1.csv", "imp2.csv", "imp10.csv"]
    rounded.assign(y=lambda d: d["y"].mask(d.index == 4, d["y"] * 1.00001)).to_csv("imp2.csv", index=False)
    assert message(user).startswith("imp2.csv: row 5 (line 6, counting the header) has y ")


def test_group_ids_that_differ_in_one_file(user):
    imputed(10).assign(g=lambda d: d["g"].mask(d.index == 12, 99)).to_csv("imp10.csv", index=False)
    assert message(user).startswith("imp10.csv: row 13 (line 14, counting the header) has g 99 where data.csv has 2;")
    imputed(10).to_parquet("imp10.parquet")
    user["imputation"]["files"] = ["imp1.csv", "imp10.parquet"]
    assert check_inputs(user) == ["imp1.csv", "imp10.parquet"]                       # a Parquet file: rows from 1
    imputed(10).assign(g=lambda d: d["g"].astype(str).mask(d.index == 12, "x")).to_parquet("imp10.parquet")
    assert message(user).startswith("imp10.parquet: row 13 has g 'x' where data.csv has 2;")


def test_rows_in_another_order_in_one_file(user):
    data = frame().assign(id=range(1, 41))
    data.loc[[1, 7], "x"] = np.nan
    data.to_csv("data.csv", index=False)
    for k in (1, 2, 10):
        imputed(k).assign(id=range(1, 41)).to_csv(f"imp{k}.csv", index=False)
    assert check_inputs(user) == ["imp1.csv", "imp2.csv", "imp10.csv"]
    shuffled = imputed(2).assign(id=range(1, 41))
    within = shuffled.index.to_numpy().copy()
    within[[0, 1]] = within[[1, 0]]                             # two rows of group 0 swapped: same groups
    shuffled.iloc[within].to_csv("imp2.csv", index=False)
    assert message(user).startswith("imp2.csv: row 1 (line 2, counting the header) has id 2 where data.csv has 1 "
                                    "(and 1 more row);")          # the ids tell of it before the model's variables


# ---- numbers a fit cannot use, and rows without a group (issue 12, item 4) ----

def test_infinite_and_huge_values_in_the_data_or_an_imputed_file(user):
    rows = [f"{g},{x},{y}" for g, x, y in frame().itertuples(index=False)]
    csv_lines(["g,x,y", *rows[:4], "1,inf,0.5", *rows[5:]])
    assert message(user) == ("data.csv: column 'x' holds numbers, but line 6 (counting the header) has inf; a model "
                             "needs finite numbers: correct it in the file, or leave the cell empty if it is missing")
    csv_lines(["g,x,y", *rows[:9], "2,0.5,-1e300", *rows[10:]])
    assert message(user) == ("data.csv: column 'y' holds numbers, but line 11 (counting the header) has -1e+300, "
                             "beyond the ±1e+75 a fit can square without overflow; correct it, or rescale the column "
                             "(e.g. to thousands)")
    frame().assign(x=lambda d: d["x"].mask(d.index.isin([1, 7]))).to_csv("data.csv", index=False)
    imputed(2).assign(x=lambda d: d["x"].mask(d.index == 7, -np.inf)).to_csv("imp2.csv", index=False)
    assert message(user).startswith("imp2.csv: column 'x' holds numbers, but line 9 (counting the header) has -inf;")
    user["data"]["na_values"] = ["inf"]                         # a code the user names as missing is missing
    frame().assign(x=lambda d: d["x"].astype(object).mask(d.index.isin([1, 7]), "inf")).to_csv("data.csv", index=False)
    imputed(2).to_csv("imp2.csv", index=False)
    assert check_inputs(user) == ["imp1.csv", "imp2.csv", "imp10.csv"]


def test_rows_without_a_group_id_are_refused(user):
    frame().assign(g=lambda d: d["g"].mask(d.index.isin([4, 30, 31]))).to_csv("data.csv", index=False)
    assert message(user) == ("data.csv: grouping column 'g' is empty on line 6 (counting the header) (and 2 more "
                             "rows); a row without its group cannot be imputed within its cluster: fill in the id, or "
                             "delete the row from a copy of the file and give that copy as data.source")


# ---- column names, file names, separators and categorical columns (issue 12, item 14) ----

def test_a_repeated_column_name_is_refused_in_csv_and_parquet(user):
    csv_lines(["g,x,y,x", *[f"{g},{x},{y},1" for g, x, y in frame().itertuples(index=False)]])
    assert message(user) == ("data.csv: the column name 'x' is given 2 times (columns 2 and 4); give each column "
                             "a name of its own")
    import pyarrow
    import pyarrow.parquet

    table = pyarrow.Table.from_pandas(imputed(2), preserve_index=False)
    pyarrow.parquet.write_table(table.append_column("g", table["g"]), "imp2.parquet")
    user["imputation"]["files"] = ["imp1.csv", "imp2.parquet"]
    imputed(1).to_csv("data.csv", index=False)
    assert message(user).startswith("imp2.parquet: the column name 'g' is given 2 times (columns 1 and 4)")


def test_a_file_separated_by_semicolons_gets_a_hint(user):
    frame().to_csv("data.csv", index=False, sep=";", decimal=",")
    assert message(user) == ("data.csv: one column named 'g;x;y': the file seems to be separated by ';', but mlmi "
                             "reads comma-separated CSV; save it with ',' between cells (R: write.csv, not write.csv2; "
                             "Excel: 'CSV (Comma delimited)'), or as Parquet")


def test_braces_in_a_file_name_are_refused_before_snakemake_reads_them_as_wildcards(user):
    Path("data.csv").rename("data{1}.csv")
    user["data"]["source"] = "data{1}.csv"
    assert message(user) == ("data.source: 'data{1}.csv' has '{' or '}' in its name, which Snakemake reads as a "
                             "wildcard; rename the file (or a copy of it) without them")
    Path("data{1}.csv").rename("data.csv")
    user["data"]["source"] = "data.csv"
    Path("imp2.csv").rename("imp{2}.csv")
    assert message(user).startswith("imputation.files: 'imp{2}.csv' has '{' or '}' in its name")


def test_a_damaged_parquet_file_of_the_user_is_one_line(user):
    frame().to_parquet("data.parquet")
    whole = Path("data.parquet").read_bytes()
    user["data"]["source"] = "data.parquet"
    Path("data.parquet").write_bytes(whole[: len(whole) // 2])
    assert message(user) == ("data.parquet: not a readable Parquet file (it does not end with Parquet's marker "
                             "'PAR1': cut short?); write it again from its source, or give it as CSV")
    Path("data.parquet").write_bytes(b"PAR1")
    assert message(user).startswith("data.parquet: not a readable Parquet file (4 bytes, fewer than the 12")
    Path("data.parquet").write_bytes(b"PAR1" + b"\0" * 20 + b"PAR1")
    assert message(user).startswith("data.parquet: not a readable Parquet file (its footer cannot be read: ")


def test_a_parquet_categorical_has_the_reference_level_of_its_csv_copy(tmp_path):
    """R's factor() order (sorted), whatever order the categorical stores, as the README promises."""
    from mlmi.fit.formula import fixed_design
    from mlmi.run.tables import read_table

    data = frame().assign(sex=pd.Categorical(["girl", "boy"] * 20, categories=["girl", "boy"]),
                          code=pd.Categorical([3, 1, None, 2] * 10, categories=[3, 2, 1]))
    data.to_parquet(tmp_path / "data.parquet")
    data.to_csv(tmp_path / "data.csv", index=False)
    designs = [fixed_design("x + sex + C(code)", read_table(str(tmp_path / name)).dropna())
               for name in ("data.parquet", "data.csv")]
    assert designs[0].factors == designs[1].factors == {
        "sex": {"levels": ["boy", "girl"], "reference": "boy"},
        "C(code)": {"levels": ["1", "2", "3"], "reference": "1"}}
    assert designs[0].names == designs[1].names and (designs[0].X == designs[1].X).all()

def test_multilevel_excludes_nothing_by_default_and_refuses_model_columns(user):
    user["imputation"].update(method="multilevel")                     # exclude: auto
    assert imputation_roles(user)["exclude"] == [] and check_inputs(user) == []
    assert imputation_roles({**DEFAULT, "imputation": {**DEFAULT["imputation"], "method": "multilevel"}})[
        "exclude"] == []                                                 # not the vignette's [schid, meanses]
    user["imputation"]["exclude"] = ["g"]
    assert message(user) == ("data.csv: imputation.exclude lists ['g'], which model.formula uses and the multilevel "
                             "method needs (the grouping column is its clusters): take them out, or set "
                             "imputation.exclude: auto")


def with_tests(config: dict, tests: list) -> dict:
    config = copy.deepcopy(config)
    config["pooling"]["tests"] = tests
    return config


def test_pooled_tests_of_known_terms_and_constraints_pass():
    tests = [{"name": "block", "terms": ["ses", "meanses"]}, {"name": "equal", "constraints": ["ses - meanses = 0"]},
             {"name": "intercept", "constraints": ["(Intercept) = 14", "2*female + minority = -5"]}]
    assert check_inputs(with_tests(DEFAULT, tests)) == []


@pytest.mark.parametrize("tests, expected", [
    ([{"name": "gender", "terms": ["gender"]}],
     "pooling.tests 'gender': 'gender' is not a fixed-effect term of model.formula (terms: (Intercept), minority, "
     "female, ses, meanses); name terms as lme4 names them, or a factor to test all its levels"),
    ([{"name": "eq", "constraints": ["ses - meanSES = 0"]}],
     "pooling.tests 'eq': constraint 'ses - meanSES = 0' names 'meanSES', not a fixed-effect term of model.formula "
     "(terms: (Intercept), minority, female, ses, meanses); name terms as lme4 names them"),
    ([{"name": "eq", "constraints": ["ses * meanses = 0"]}], "pooling.tests 'eq': constraint 'ses * meanses = 0': "
     "'*' is not followed by a number (a constraint is linear)"),
    ([{"name": "both", "terms": ["ses"], "constraints": ["ses = 1"]}],
     "pooling.tests 'both': give either terms (tested all zero) or constraints"),
    ([{"name": "neither"}], "pooling.tests 'neither': give either terms"),
    ([{"name": "a", "terms": ["ses"]}, {"name": "a", "terms": ["female"]}],
     "pooling.tests: the name 'a' is given to two tests; give each test its own name"),
])
def test_a_pooled_test_that_cannot_work_is_one_line_before_any_job(tests, expected):
    assert message(with_tests(DEFAULT, tests)).startswith(expected)


def test_a_factor_of_the_users_data_is_tested_by_its_name(user):
    data = frame().assign(school_type=lambda d: np.array(["public", "catholic", "private", "public"] * 10))
    data.loc[[1, 7], "x"] = np.nan
    data.to_csv("data.csv", index=False)
    for k in (1, 2, 10):
        imputed(k).assign(school_type=data["school_type"]).to_csv(f"imp{k}.csv", index=False)
    user["model"]["formula"] = "y ~ x + school_type + (1 + x | g)"
    good = with_tests(user, [{"name": "type", "terms": ["school_type"]},
                             {"name": "private_public", "constraints": ["school_typeprivate - school_typepublic = 0"]}])
    assert check_inputs(good) == ["imp1.csv", "imp2.csv", "imp10.csv"]
    assert "'school_typecatholic' is not a fixed-effect term" in message(
        with_tests(user, [{"name": "ref", "terms": ["school_typecatholic"]}]))      # the reference level has no column


@pytest.mark.parametrize("tests, expected", [
    ([{"name": "x", "terms": []}], "config key pooling.tests.0.terms: [] should be non-empty"),
    ([{"name": " ", "terms": ["ses"]}], "config key pooling.tests.0.name: ' ' is not allowed here"),
    ([{"name": "x", "term": ["ses"]}], "config key pooling.tests.0: Additional properties are not allowed ('term' was "
                                       "unexpected); did you mean 'terms'?"),
])
def test_the_schema_describes_pooled_tests(tests, expected):
    assert schema_problem(with_tests(DEFAULT, tests), SCHEMA).startswith(expected)


def with_compare(config: dict, compare: list, reml: bool = False, tests: list = ()) -> dict:
    config = copy.deepcopy(config)
    config["pooling"]["compare"] = compare
    config["pooling"]["tests"] = list(tests)
    config["model"]["reml"] = reml
    return config


NO_SLOPE = "mathach ~ minority + female + ses + meanses + (1 | schid)"


def test_nested_comparisons_pass():
    compare = [{"name": "no_slope", "formula": NO_SLOPE},
               {"name": "no_ses", "formula": "mathach ~ minority + female + (1 + ses | schid)", "methods": ["D3"]}]
    assert check_inputs(with_compare(DEFAULT, compare)) == []
    # REML: D2 of models that differ in random terms alone
    assert check_inputs(with_compare(DEFAULT, [{"name": "s", "formula": NO_SLOPE, "methods": ["D2"]}], reml=True)) == []


@pytest.mark.parametrize("compare, reml, expected", [
    ([{"name": "c", "formula": "mathach ~ minority + female + ses + size + (1 | schid)"}], False,
     "pooling.compare 'c': the formula 'mathach ~ minority + female + ses + size + (1 | schid)' is not nested in "
     "model.formula 'mathach ~ minority + female + ses + meanses + (1 + ses | schid)': its fixed terms ['size'] are "
     "not in model.formula (a nested model keeps a subset of them)"),
    ([{"name": "c", "formula": "mathach ~ ses + (1 + female | schid)"}], False,
     "pooling.compare 'c': the formula 'mathach ~ ses + (1 + female | schid)' is not nested in model.formula "
     "'mathach ~ minority + female + ses + meanses + (1 + ses | schid)': its random terms ['female'] are not in "
     "model.formula's (1 + ... | schid)"),
    ([{"name": "c", "formula": "mathach ~ female + ses + minority + meanses + (ses | schid)"}], False,
     "pooling.compare 'c': the formula 'mathach ~ female + ses + minority + meanses + (ses | schid)' is not nested "
     "in model.formula 'mathach ~ minority + female + ses + meanses + (1 + ses | schid)': it is model.formula "
     "itself; drop fixed or random terms to make the smaller model"),
    ([{"name": "c", "formula": "mathach ~ ses"}], False,
     "pooling.compare 'c': formula 'mathach ~ ses': no random-effects term; add one such as '(1 | group)'"),
    ([{"name": "c", "formula": "mathach ~ ses + (1 | schid) + (0 + ses | schid)"}], False,
     "pooling.compare 'c': formula 'mathach ~ ses + (1 | schid) + (0 + ses | schid)': random terms (1 | schid), "
     "(0 + ses | schid); this step handles one grouping column with random intercept and slopes of plain columns, "
     "such as '(1 + x | school)'"),
    ([{"name": "c", "formula": NO_SLOPE}], True,
     "pooling.compare 'c': D3 evaluates the likelihood at the pooled fixed effects and needs ML fits (mitml refits "
     "REML fits with ML for it): set model.reml: false, or ask for methods: [D2] (REML likelihoods of the same "
     "fixed terms)"),
    ([{"name": "c", "formula": "mathach ~ minority + female + (1 + ses | schid)", "methods": ["D2"]}], True,
     "pooling.compare 'c': D2 compares models with different fixed terms, whose REML likelihoods are not "
     "comparable: set model.reml: false (ML fits)"),
    ([{"name": "c", "formula": NO_SLOPE}, {"name": "c", "formula": NO_SLOPE}], False,
     "pooling.compare: the name 'c' is given twice (in pooling.tests or pooling.compare); give each test and "
     "comparison its own name"),
])
def test_a_comparison_that_cannot_work_is_one_line_before_any_job(compare, reml, expected):
    assert message(with_compare(DEFAULT, compare, reml)) == expected


def test_a_comparison_may_not_take_a_tests_name():
    config = with_compare(DEFAULT, [{"name": "block", "formula": NO_SLOPE}],
                          tests=[{"name": "block", "terms": ["ses", "meanses"]}])
    assert message(config).startswith("pooling.compare: the name 'block' is given twice")


@pytest.mark.parametrize("compare, expected", [
    ([{"name": "c"}], "config key pooling.compare.0: 'formula' is a required property"),
    ([{"name": "a/b", "formula": NO_SLOPE}],
     "config key pooling.compare.0.name: 'a/b' is not allowed here; expected: the comparison's name"),
    ([{"name": "..", "formula": NO_SLOPE}], "config key pooling.compare.0.name: '..' is not allowed here"),
    ([{"name": "c", "formula": NO_SLOPE, "methods": ["D1"]}],
     "config key pooling.compare.0.methods.0: 'D1' is not one of"),
    ([{"name": "c", "formula": NO_SLOPE, "methods": []}],
     "config key pooling.compare.0.methods: [] should be non-empty"),
])
def test_the_schema_describes_comparisons(compare, expected):
    assert schema_problem(with_compare(DEFAULT, compare), SCHEMA).startswith(expected)
