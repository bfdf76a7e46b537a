"""The user's inputs, checked before any job runs: config, data file, imputed files.

Every problem is one line naming the config key, file or column and what to do, raised
as ``InputError``; the workflow prints it and stops before it has done any work. An input
the run can go on with (groups of one in a random-slope model) is one line passed to a
``warn`` function; the workflow prints it as ``mlmi: warning: ...`` and runs on.
"""
import csv
import difflib
import glob
import os
import re
import warnings

import jsonschema
import numpy as np
import pandas as pd

from mlmi.ampute import ampute_from_config
from mlmi.formula import FormulaError, fixed_design, parse_formula
from mlmi.levels import level2_columns
from mlmi.simulate import COLUMNS as SIMULATED_COLUMNS
from mlmi.simulate import simulate_hsb

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
#: Amelia's idvars and noms in the merTools vignette: what imputation.exclude and .categorical
#: ``auto`` mean for the simulated hsb-like data.
VIGNETTE_ROLES = {"exclude": ["schid", "meanses"], "categorical": ["minority", "female"]}
#: Schools in the trial data set that checks generator and missingness settings at start-up.
TRIAL_SCHOOLS = 40
#: What statsmodels' MixedLM, and so mlmi, fits (design §7).
SUPPORTED_RANDOM = ("mlmi fits one grouping factor with correlated random intercept and slopes, "
                    "such as '(1 + x | school)'")
#: The grouping factor of each '(terms | group)' part of a formula.
_GROUPING = re.compile(r"\|\|?([^()|]*)\)")
#: JSON Schema's types and bounds as a config's author reads them.
TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "text", "boolean": "true or false",
              "array": "a list", "object": "a mapping of keys to values", "null": "nothing"}
BOUNDS = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most", "exclusiveMaximum": "below"}
#: Words that mean 'missing' in exported data, beyond pandas' own (NA, N/A, NULL, None, NaN, ...).
MISSING_WORDS = {"na", "n.a.", "missing", "miss", "unknown", "none", "nil", "empty", "blank"}


class InputError(ValueError):
    """A config, data file or imputed file mlmi cannot use; the message says why and what to do."""


def _is_number(checker, instance) -> bool:
    """JSON Schema's number, without NaN (which YAML's .nan gives and which passes every bound)."""
    return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(instance, "number") and instance == instance


#: The schema validator mlmi uses: Draft 2020-12 with NaN refused as a number.
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _is_number))


def schema_problem(config: dict, schema: dict) -> str | None:
    """The most relevant schema violation of ``config`` as one line naming the key; None if valid."""
    error = jsonschema.exceptions.best_match(Validator(schema).iter_errors(config))
    if error is None:
        return None
    key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    advice = _schema_advice(error)
    return f"config key {key}: {error.message}" + (f"; {advice}" if advice else "")


def _schema_advice(error: jsonschema.ValidationError) -> str:
    """What to write instead: the near key or value (a likely typo), the allowed type or range, or what the key is."""
    rule, schema = error.validator, error.schema
    if rule == "additionalProperties" and error.validator_value is False:
        known = list(schema.get("properties", {}))
        unknown = next(key for key in error.instance if key not in known)
        return _near(unknown, known) or \
            f"the keys allowed here are {', '.join(known)} (config/schema.yaml describes each)"
    if rule == "enum":
        return _near(error.instance, error.validator_value)
    if rule == "type":
        types = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        return "give " + " or ".join(TYPE_WORDS[name] for name in types)
    if rule in BOUNDS:
        limits = [f"{BOUNDS[name]} {schema[name]}" for name in BOUNDS if name in schema]
        return f"give {TYPE_WORDS[schema.get('type', 'number')]} that is {' and '.join(limits)}"
    return f"expected: {schema['description']}" if "description" in schema else ""


def _near(word, choices) -> str:
    """'did you mean X?' for the choice closest to ``word`` (difflib, ignoring case), or '' when none is close."""
    by_case = {str(choice).lower(): choice for choice in choices}
    near = difflib.get_close_matches(str(word).lower(), list(by_case), n=1)
    return f"did you mean {by_case[near[0]]!r}?" if near else ""


def read_table(path: str, columns=None, na_values=()) -> pd.DataFrame:
    """Read a CSV or Parquet file (by its suffix), optionally only some columns.

    Missing are empty cells, ``NA`` and ``NaN`` (pandas' defaults) and every code in
    ``na_values`` (data.na_values, e.g. -99): a number matches by value, text as written.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in READERS:
        raise InputError(f"{path}: unknown file type {suffix!r}; give a .csv or .parquet file")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (relative paths are read from the working directory {os.getcwd()})")
    empty = InputError(f"{path}: the file is empty; give a header row of column names and one row per observation")
    if os.path.getsize(path) == 0:
        raise empty
    if suffix == ".csv":
        try:
            data = pd.read_csv(path, usecols=columns, na_values=[str(code) for code in na_values])
        except pd.errors.EmptyDataError:  # blank lines only
            raise empty from None
    else:
        data = pd.read_parquet(path, columns=columns)
    if data.empty:
        raise InputError(f"{path}: column names but no rows of data; give one row per observation")
    return mark_missing(data, na_values)


def mark_missing(data: pd.DataFrame, na_values) -> pd.DataFrame:
    """``data`` with every cell equal to a missing-value code made missing: numbers by value, text as text."""
    if not na_values:
        return data
    numbers = [number for number in map(_as_number, na_values) if number is not None]
    texts = [str(code) for code in na_values]
    return data.apply(lambda column: column.mask(
        column.isin(numbers) if pd.api.types.is_numeric_dtype(column) else column.isin(texts)))


def _as_number(code) -> float | None:
    """A missing-value code as a number (-99 and "-99" alike), or None for text such as "."."""
    try:
        return float(code)
    except ValueError:
        return None


def imputation_roles(config: dict) -> dict[str, list[str]]:
    """imputation.exclude, .categorical and .level2 with ``auto`` made explicit.

    ``auto`` is the vignette's lists for simulated data; for the user's data, the model's
    grouping column is excluded, and the columns the formula wraps in ``C()`` or
    ``factor()`` are categorical (text columns always are: see ``mlmi.impute``). The multilevel
    method excludes nothing by default: it needs the grouping column and every model variable.
    Level 2 is found in the data (see ``level2_roles``).
    """
    imputation = config["imputation"]
    if config["data"]["source"] == "simulate":
        auto = VIGNETTE_ROLES
    else:
        formula = model_formula(config)
        auto = {"exclude": [formula.group], "categorical": list(formula.coded_factors)}
    if imputation["method"] == "multilevel":  # its clusters are the grouping column, its model the formula's columns
        auto = auto | {"exclude": []}
    roles = {key: list(auto[key]) if imputation[key] == "auto" else imputation[key] for key in auto}
    return roles | {"level2": level2_roles(config, roles["exclude"])}


def level2_roles(config: dict, exclude) -> list[str]:
    """imputation.level2, ``auto`` made explicit: the columns neither excluded nor declared cluster means
    that are constant within every cluster of the model's grouping factor (``mlmi.levels.level2_columns``),
    in the user's data, or in a trial data set of the generator ([] for external imputations)."""
    imputation = config["imputation"]
    if imputation["level2"] != "auto":
        return imputation["level2"]
    if imputation["method"] == "external":
        return []
    data = _trial_data(config) if config["data"]["source"] == "simulate" else \
        read_table(config["data"]["source"], na_values=config["data"]["na_values"])
    return level2_columns(data, model_formula(config).group,
                          [c for c in data.columns if c not in {*exclude, *imputation["cluster_means"]}])


def model_formula(config: dict):
    """The parsed model.formula, its problems as InputError (grouping mlmi cannot fit said as such)."""
    text = config["model"]["formula"]
    try:
        return parse_formula(text)
    except FormulaError as error:
        raise InputError(_grouping_problem(text) or str(error)) from None


def _grouping_problem(text: str) -> str | None:
    """Nested, interaction or crossed grouping factors in ``text`` (unquoted names), as one line; else None."""
    groups = [group.strip() for group in _GROUPING.findall(text)] if "`" not in text else []
    for group in groups:
        if "/" in group:
            outer, inner = (part.strip() for part in group.split("/", 1))
            return (f"model.formula {text!r}: nested grouping {group!r} ({inner} within {outer}) is not supported "
                    f"({SUPPORTED_RANDOM}); keep one level: '(1 | {outer})', or '(1 | {inner})' if {inner} ids "
                    f"are unique across {outer}")
        if ":" in group:
            return (f"model.formula {text!r}: grouping by the interaction {group!r} is not supported "
                    f"({SUPPORTED_RANDOM}); make a column with one id per combination of "
                    f"{' and '.join(part.strip() for part in group.split(':'))} and group by it")
    if len(set(groups)) > 1:
        return (f"model.formula {text!r}: crossed random effects of {' and '.join(map(repr, dict.fromkeys(groups)))} "
                f"are not supported ({SUPPORTED_RANDOM}); keep one grouping factor")
    return None


def natural_key(path: str) -> list:
    """Sort key that puts imp2 before imp10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def imputation_files(spec: list[str]) -> list[str]:
    """The external imputed files: a list of paths, or one glob, in natural order."""
    if not spec:
        raise InputError("imputation.files: empty; list the imputed data sets, or give one glob such as 'imp/imp*.csv'")
    if len(spec) == 1 and glob.has_magic(spec[0]):
        files = sorted(glob.glob(spec[0]), key=natural_key)
        if not files:
            raise InputError(f"imputation.files: the glob {spec[0]!r} matches no file "
                             f"(relative to the working directory {os.getcwd()})")
        return files
    for path in spec:
        if not os.path.isfile(path):
            raise InputError(f"imputation.files: {path}: no such file")
    return list(spec)


def warn_user(text: str) -> None:
    """Tell of an input mlmi can use but the user should look at, as a Python warning (the workflow prints a line)."""
    warnings.warn(text, UserWarning, stacklevel=2)


def check_inputs(config: dict, warn=warn_user) -> list[str]:
    """Check the config's formula, data and imputed files; return the imputed files (or []).

    A problem that stops the run raises ``InputError``; one the run can go on with is passed
    to ``warn`` as one line.
    """
    formula = model_formula(config)
    source, imputation = config["data"]["source"], config["imputation"]
    if imputation["method"] == "external" and source == "simulate":
        raise InputError("imputation.method external needs data.source: the path of the incomplete data "
                         "the files were imputed from (for the listwise fit)")
    if source == "simulate":
        _check_columns("the simulated data", pd.DataFrame(0.0, index=[0, 1], columns=SIMULATED_COLUMNS),
                       formula, config)
        _check_simulation(config)
        return []
    _check_data(source, formula, config, warn)
    if imputation["method"] != "external":
        return []
    files = imputation_files(imputation["files"])
    if len(files) < 2:
        raise InputError(f"imputation.files: only {files}; pooling needs at least 2 imputed data sets")
    _check_imputed(files, formula, config["data"]["na_values"])
    return files


def _check_columns(where: str, data: pd.DataFrame, formula, config: dict) -> None:
    """Every column the formula and the imputation settings name must be in ``data``."""
    columns = list(data.columns)
    absent = [c for c in (formula.response, formula.group, *formula.random_terms) if c not in columns]
    if absent:
        raise InputError(f"{where}: model.formula uses {absent}, not among the columns {columns}")
    try:
        fixed_design(formula.fixed, data.head(2))
    except ValueError as error:  # formulaic names the unknown variable in its own words
        raise InputError(f"{where}: the fixed part {formula.fixed!r} of model.formula cannot be built "
                         f"from the columns {columns}: {error}") from None
    roles = imputation_roles(config) if config["imputation"]["method"] != "external" else {}
    for key, listed in roles.items():
        absent = [c for c in listed if c not in columns]
        if absent:
            raise InputError(f"{where}: imputation.{key} lists {absent}, not among the columns {columns}")
    if roles:
        _check_cluster_means(where, columns, config["imputation"]["cluster_means"], roles)
    used = [c for c in formula.variables(columns) if c in roles.get("exclude", [])]
    if used and config["imputation"]["method"] == "multilevel":
        raise InputError(f"{where}: imputation.exclude lists {used}, which model.formula uses and the multilevel "
                         "method needs (the grouping column is its clusters): take them out, or set "
                         "imputation.exclude: auto")
    as_numbers = [c for c in formula.coded_factors if c in columns and data[c].isna().any()
                  and pd.api.types.is_numeric_dtype(data[c]) and c not in roles.get("categorical", [c])]
    if as_numbers:
        raise InputError(f"{where}: model.formula makes {as_numbers} factors, but they would be imputed as numbers "
                         "(between the codes); add them to imputation.categorical")


def _trial_data(config: dict) -> pd.DataFrame:
    """A small complete data set of the generator's settings, for checks at start-up."""
    settings = {**config["data"]["simulate"], "n_schools": TRIAL_SCHOOLS}
    try:
        return simulate_hsb(settings, np.random.default_rng(0))[0]
    except ValueError as error:
        raise InputError(f"data.simulate: {error}") from None


def _check_cluster_means(where: str, columns: list, means: dict, roles: dict) -> None:
    """Each imputation.cluster_means entry must be usable (see ``_cluster_mean_problem``)."""
    for mean, column in means.items():
        problem = _cluster_mean_problem(mean, column, columns, means, roles)
        if problem:
            raise InputError(f"{where}: imputation.cluster_means {mean}: {column}: {problem}")


def _cluster_mean_problem(mean: str, column: str, columns: list, means: dict, roles: dict) -> str | None:
    """Why ``mean`` cannot be recomputed as the cluster mean of ``column``, or None: both must be
    columns, neither excluded, ``column`` a level-1 column and ``mean`` not listed as level 2."""
    absent = [c for c in (mean, column) if c not in columns]
    checks = [
        (absent, f"{absent} not among the columns {columns}"),
        (mean in roles["exclude"], f"{mean!r} is in imputation.exclude; take it out (a recomputed mean predicts)"),
        (column in roles["exclude"],
         f"its level-1 column {column!r} is in imputation.exclude; take it out (it must be imputed)"),
        (column in means or column in roles["level2"],
         f"{column!r} is a cluster mean or level 2 itself; give the level-1 column {mean!r} is the mean of"),
        (mean in roles["level2"], f"{mean!r} is in imputation.level2 too; a cluster mean is recomputed, "
                                  "not imputed: take it out of imputation.level2"),
    ]
    return next((text for failed, text in checks if failed), None)


def _check_simulation(config: dict) -> None:
    """Generator settings and missingness that cannot work, found on a small trial data set."""
    trial = _trial_data(config)
    try:
        ampute_from_config(trial, config["missingness"], np.random.default_rng(0), group=model_formula(config).group)
    except ValueError as error:
        raise InputError(f"missingness: {error}") from None


def _check_data(path: str, formula, config: dict, warn) -> None:
    """The incomplete data: readable, has the model's columns, numbers where numbers belong,
    observed and varying model variables, several groups (and, with random slopes, no group of one)."""
    data = read_table(path, na_values=config["data"]["na_values"])
    _check_columns(path, data, formula, config)
    used = formula.variables(data.columns)
    if config["imputation"]["method"] != "external":  # every column not excluded predicts the imputations
        excluded = imputation_roles(config)["exclude"]
        used = [c for c in data.columns if c in used or c not in excluded]
    _check_numbers(path, data, [c for c in used if c != formula.group], formula)
    _check_observed(path, data, formula)
    groups = data.groupby(formula.group).size()
    if len(groups) < 2:
        raise InputError(f"{path}: grouping column {formula.group!r} has a single level ({_show(groups.index[0])}); "
                         "a multilevel model needs at least 2 groups: check the grouping factor of model.formula")
    singles = groups[groups == 1]
    if formula.random_terms and len(singles):
        warn(f"{path}: {len(singles)} of {len(groups)} groups of {formula.group!r} have a single observation "
             f"(first: {_show(singles.index[0])}), too few to show their own random slope of "
             f"{', '.join(map(repr, formula.random_terms))}; the run goes on, but look for a singular fit "
             "(or drop those groups)")


def _check_numbers(path: str, data: pd.DataFrame, columns: list[str], formula) -> None:
    """Columns of numbers with a stray text cell (a missing-value code?), and a text outcome or random slope.

    A column is numbers when most of its observed cells are; a text column is a category,
    except the outcome and the random slopes, which must be numbers. Names the first bad cell.
    """
    for column in columns:
        values = data[column]
        if pd.api.types.is_numeric_dtype(values):
            continue
        bad = values.notna() & pd.to_numeric(values.astype(object), errors="coerce").isna()
        text = bad.sum() >= 0.5 * values.notna().sum()
        role = "the outcome" if column == formula.response else \
            "the random slope" if column in formula.random_terms else None
        if not bad.any() or (text and role is None):
            continue
        first = int(np.argmax(bad.to_numpy()))
        value, where = values.iloc[first], _row_name(path, first)
        others = bad.sum() - 1
        more = f" (and {others} more such cell{'s' if others > 1 else ''})" if others else ""
        if text:
            raise InputError(f"{path}: {role} {column!r} must be numbers, but {where} has {value!r}{more}; "
                             "recode it as numbers, or model another column")
        advice = f"add {value!r} to data.na_values if it means missing" if _looks_missing(str(value)) \
            else "correct it to a number in the file"
        raise InputError(f"{path}: column {column!r} holds numbers, but {where} has {value!r}{more}; {advice}")


def _looks_missing(text: str) -> bool:
    """Whether a text cell looks like a missing-value code: no letter or digit ('.', '?'), or a word like 'missing'."""
    return not any(char.isalnum() for char in text) or text.strip().lower() in MISSING_WORDS


def _row_name(path: str, position: int) -> str:
    """Where data row ``position`` (from 0) is, as the user finds it: its line in a CSV, its row in Parquet."""
    if not path.lower().endswith(".csv"):
        return f"row {position + 1}"
    with open(path, newline="", encoding="utf-8", errors="replace") as stream:
        reader, end, row = csv.reader(stream), 0, -1          # row -1: the header
        for record in reader:
            start, end = end + 1, reader.line_num             # a quoted cell may span lines
            if not record:                                     # pandas skips blank lines
                continue
            if row == position:
                return f"line {start} (counting the header)"
            row += 1
    return f"line {position + 2} (counting the header)"


def _check_observed(path: str, data: pd.DataFrame, formula) -> None:
    """Every model variable has a value somewhere, and the outcome takes more than one value."""
    for column in formula.variables(data.columns):
        if data[column].isna().all():
            raise InputError(f"{path}: model variable {column!r} is missing in all {len(data)} rows; "
                             "check the column (and data.na_values), or leave it out of model.formula")
    outcome = data[formula.response].dropna()
    if outcome.nunique() == 1:
        raise InputError(f"{path}: the outcome {formula.response!r} is {_show(outcome.iloc[0])} in every row that has "
                         "a value; a model needs an outcome that varies: check the response of model.formula")


def _show(value) -> str:
    """A cell's value as the user wrote it: text quoted, numbers plain (3, not np.int64(3))."""
    return repr(value) if isinstance(value, str) else str(value)


def _check_imputed(files: list[str], formula, na_values) -> None:
    """Imputed files: same columns and rows as the first, no missing value in model variables."""
    first = read_table(files[0], na_values=na_values)
    for path in files:
        data = first if path == files[0] else read_table(path, na_values=na_values)
        if list(data.columns) != list(first.columns):
            raise InputError(f"{path}: columns {list(data.columns)} differ from {files[0]}'s {list(first.columns)}")
        if len(data) != len(first):
            raise InputError(f"{path}: {len(data)} rows, but {files[0]} has {len(first)}; "
                             "every imputed data set must have the rows of the incomplete data")
        _check_numbers(path, data, [c for c in formula.variables(data.columns) if c != formula.group], formula)
        holes = [c for c in formula.variables(data.columns) if data[c].isna().any()]
        if holes:
            raise InputError(f"{path}: missing values left in model variables {holes}; give completed data sets")
        if data[formula.group].nunique() < 2:
            raise InputError(f"{path}: grouping column {formula.group!r} has a single level")
