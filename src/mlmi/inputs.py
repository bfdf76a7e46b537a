"""The user's inputs, checked before any job runs: config, data file, imputed files.

Every problem is one line naming the config key, file or column and what to do, raised
as ``InputError``; the workflow prints it and stops before it has done any work.
"""
import glob
import os
import re

import jsonschema
import numpy as np
import pandas as pd
from formulaic import model_matrix

from mlmi.ampute import ampute_from_config
from mlmi.formula import FormulaError, parse_formula
from mlmi.simulate import COLUMNS as SIMULATED_COLUMNS
from mlmi.simulate import simulate_hsb

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
#: Schools in the trial data set that checks generator and missingness settings at start-up.
TRIAL_SCHOOLS = 40


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
    return f"config key {key}: {error.message}"


def read_table(path: str, columns=None) -> pd.DataFrame:
    """Read a CSV or Parquet file (by its suffix), optionally only some columns."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in READERS:
        raise InputError(f"{path}: unknown file type {suffix!r}; give a .csv or .parquet file")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (relative paths are read from the working directory {os.getcwd()})")
    if suffix == ".csv":
        return pd.read_csv(path, usecols=columns)
    return pd.read_parquet(path, columns=columns)


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


def check_inputs(config: dict) -> list[str]:
    """Check the config's formula, data and imputed files; return the imputed files (or [])."""
    try:
        formula = parse_formula(config["model"]["formula"])
    except FormulaError as error:
        raise InputError(str(error)) from None
    source, imputation = config["data"]["source"], config["imputation"]
    if imputation["method"] == "external" and source == "simulate":
        raise InputError("imputation.method external needs data.source: the path of the incomplete data "
                         "the files were imputed from (for the listwise fit)")
    if source == "simulate":
        _check_columns("the simulated data", pd.DataFrame(0.0, index=[0, 1], columns=SIMULATED_COLUMNS),
                       formula, config)
        _check_simulation(config)
        return []
    _check_data(source, formula, config)
    if imputation["method"] != "external":
        return []
    files = imputation_files(imputation["files"])
    if len(files) < 2:
        raise InputError(f"imputation.files: only {files}; pooling needs at least 2 imputed data sets")
    _check_imputed(files, formula)
    return files


def _check_columns(where: str, data: pd.DataFrame, formula, config: dict) -> None:
    """Every column the formula and the imputation settings name must be in ``data``."""
    columns = list(data.columns)
    absent = [c for c in (formula.response, formula.group, *formula.random_terms) if c not in columns]
    if absent:
        raise InputError(f"{where}: model.formula uses {absent}, not among the columns {columns}")
    try:
        numeric = {c: float for c in columns if pd.api.types.is_numeric_dtype(data[c])}
        model_matrix(formula.fixed, data.head(2).astype(numeric))
    except Exception as error:  # formulaic names the unknown variable in its own words
        raise InputError(f"{where}: the fixed part {formula.fixed!r} of model.formula cannot be built "
                         f"from the columns {columns}: {error}") from None
    for key in ("exclude", "categorical") if config["imputation"]["method"] == "miceforest" else ():
        absent = [c for c in config["imputation"][key] if c not in columns]
        if absent:
            raise InputError(f"{where}: imputation.{key} lists {absent}, not among the columns {columns}")


def _check_simulation(config: dict) -> None:
    """Generator settings and missingness that cannot work, found on a small trial data set."""
    settings = {**config["data"]["simulate"], "n_schools": TRIAL_SCHOOLS}
    try:
        trial, _ = simulate_hsb(settings, np.random.default_rng(0))
    except ValueError as error:
        raise InputError(f"data.simulate: {error}") from None
    try:
        ampute_from_config(trial, config["missingness"], np.random.default_rng(0))
    except ValueError as error:
        raise InputError(f"missingness: {error}") from None


def _check_data(path: str, formula, config: dict) -> None:
    """The incomplete data: readable, has the model's columns, several groups."""
    data = read_table(path)
    _check_columns(path, data, formula, config)
    if data[formula.group].nunique(dropna=True) < 2:
        raise InputError(f"{path}: grouping column {formula.group!r} has a single level; "
                         "a multilevel model needs several groups")


def _check_imputed(files: list[str], formula) -> None:
    """Imputed files: same columns and rows as the first, no missing value in model variables."""
    first = read_table(files[0])
    for path in files:
        data = first if path == files[0] else read_table(path)
        if list(data.columns) != list(first.columns):
            raise InputError(f"{path}: columns {list(data.columns)} differ from {files[0]}'s {list(first.columns)}")
        if len(data) != len(first):
            raise InputError(f"{path}: {len(data)} rows, but {files[0]} has {len(first)}; "
                             "every imputed data set must have the rows of the incomplete data")
        holes = [c for c in formula.variables(data.columns) if data[c].isna().any()]
        if holes:
            raise InputError(f"{path}: missing values left in model variables {holes}; give completed data sets")
        if data[formula.group].nunique() < 2:
            raise InputError(f"{path}: grouping column {formula.group!r} has a single level")
