"""The user's inputs, checked before any job runs: config, data file, imputed files.

Here is what the config means (the schema's check, imputation roles, the model formula, the family, tests and
comparisons, the generator's settings) and ``check_inputs``, which runs every check in order; the user's table
is read by ``mlmi.run.tables`` and its content checked by ``mlmi.run.data_checks``. Every problem is one line naming
the config key, file or column and what to do, raised as ``InputError``; the workflow prints it and stops
before it has done any work. An input the run can go on with (groups of one in a random-slope model) is one
line passed to a ``warn`` function; the workflow prints it as ``mlmi: warning: ...`` and runs on.
"""
import difflib
import warnings

import jsonschema
import numpy as np
import pandas as pd

from mlmi.data.ampute import ampute_from_config
from mlmi.run.data_checks import (cells, check_groups, check_magnitudes, check_numbers, check_observed, check_same_rows,
                               with_gaps_filled)
from mlmi.data.levels import level2_columns
from mlmi.data.simulate import simulate_hsb, simulated_columns
from mlmi.fit.families import family_of, response_problem
from mlmi.fit.formula import FormulaError, fixed_design, parse_formula
from mlmi.pool.compare import METHODS, fixed_terms_differ, nesting_problem, reml_problem
from mlmi.pool.hypotheses import HypothesisError, hypothesis
from mlmi.run.plan import InputError, imputation_files
from mlmi.run.tables import read_table

#: Amelia's idvars and noms in the merTools vignette: what imputation.exclude and .categorical
#: ``auto`` mean for the simulated hsb-like data.
VIGNETTE_ROLES = {"exclude": ["schid", "meanses"], "categorical": ["minority", "female"]}
#: Schools in the trial data set that checks generator and missingness settings at start-up.
TRIAL_SCHOOLS = 40
#: JSON Schema's types and bounds as a config's author reads them.
TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "text", "boolean": "true or false",
              "array": "a list", "object": "a mapping of keys to values", "null": "nothing"}
BOUNDS = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most", "exclusiveMaximum": "below"}
#: Trial data sets by their generator settings (``_trial_data``).
_TRIALS = {}


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
    # a pattern's regular expression tells the config's author nothing; the description says what is allowed
    message = f"{error.instance!r} is not allowed here" if error.validator == "pattern" else error.message
    return f"config key {key}: {message}" + (f"; {advice}" if advice else "")


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


def imputation_roles(config: dict, data: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """imputation.exclude, .categorical and .level2 with ``auto`` made explicit.

    ``auto`` is the vignette's lists for simulated data (with any other grouping column of the model
    excluded too); for the user's data, the model's grouping columns are excluded, and the columns the
    formula wraps in ``C()`` or ``factor()`` are categorical (text columns always are: see ``mlmi.impute.miceforest``).
    The multilevel method excludes nothing by default: it needs the grouping column and every model variable.
    Level 2 is found in the data (see ``level2_roles``; ``data``: the user's, when read already).
    """
    roles = listed_roles(config)
    return roles | {"level2": level2_roles(config, roles["exclude"], data)}


def listed_roles(config: dict) -> dict[str, list[str]]:
    """imputation.exclude and .categorical with ``auto`` made explicit (see ``imputation_roles``), without
    level 2, which needs the data read."""
    imputation = config["imputation"]
    formula = model_formula(config)
    if config["data"]["source"] == "simulate":
        ids = [column for column in formula.grouping_columns if column not in VIGNETTE_ROLES["exclude"]]
        auto = VIGNETTE_ROLES | {"exclude": [*VIGNETTE_ROLES["exclude"], *ids]}
    else:
        auto = {"exclude": list(formula.grouping_columns), "categorical": list(formula.coded_factors)}
    if imputation["method"] == "multilevel":  # its clusters are the grouping column, its model the formula's columns
        auto = auto | {"exclude": []}
    return {key: list(auto[key]) if imputation[key] == "auto" else imputation[key] for key in auto}


def level2_roles(config: dict, exclude, data: pd.DataFrame | None = None) -> list[str]:
    """imputation.level2, ``auto`` made explicit: the columns neither excluded, grouping columns nor declared
    cluster means that are constant within every cluster of the model's outer grouping column
    (``MixedFormula.outer_group``: the school of ``(1 | school/class)``; ``mlmi.data.levels.level2_columns``), in
    the user's data (``data``, or read from data.source), or in a trial data set of the generator ([] for
    external imputations)."""
    imputation = config["imputation"]
    if imputation["level2"] != "auto":
        return imputation["level2"]
    if imputation["method"] == "external":
        return []
    if config["data"]["source"] == "simulate":
        data = _trial_data(config)
    elif data is None:
        data = read_table(config["data"]["source"], na_values=config["data"]["na_values"])
    formula = model_formula(config)
    return level2_columns(data, formula.outer_group, [c for c in data.columns if c not in {
        *exclude, *imputation["cluster_means"], *formula.grouping_columns}])


def model_formula(config: dict):
    """The parsed model.formula, its problems as InputError.

    A model imputed by miceforest or elsewhere, linear or generalized, may have any random terms lme4 fits
    (several grouping factors, nested or crossed, ``||``); the multilevel sampler takes one plain term,
    ``(1 + x | g)`` (``_check_sampler_shape``).
    """
    text = config["model"]["formula"]
    try:
        return parse_formula(text)
    except FormulaError as error:
        raise InputError(str(error)) from None


def _check_sampler_shape(config: dict, formula) -> None:
    """imputation.method multilevel imputes within one grouping column (its clusters) with the formula's random
    intercept and slopes: a formula of another shape is refused, naming the methods that take it."""
    if config["imputation"]["method"] == "multilevel" and not formula.single:
        terms = ", ".join(f"({bar.lme4_text})" for bar in formula.bars)
        raise InputError(f"model.formula {formula.text!r}: random terms {terms}, but imputation.method multilevel "
                         "models one grouping column with random intercept and slopes of plain columns, such as "
                         "'(1 + x | school)'; for this formula set imputation.method: miceforest (every grouping "
                         "column an id, the first one named its clusters), or impute elsewhere and give the files "
                         "with imputation.method: external")


def warn_user(text: str) -> None:
    """Tell of an input mlmi can use but the user should look at, as a Python warning (the workflow prints a line)."""
    warnings.warn(text, UserWarning, stacklevel=2)


def check_inputs(config: dict, warn=warn_user) -> list[str]:
    """Check the config's formula, data and imputed files; return the imputed files (or []).

    A problem that stops the run raises ``InputError``; one the run can go on with is passed
    to ``warn`` as one line.
    """
    formula = model_formula(config)
    _check_sampler_shape(config, formula)
    source, imputation = config["data"]["source"], config["imputation"]
    if imputation["method"] == "external" and source == "simulate":
        raise InputError("imputation.method external needs data.source: the path of the incomplete data "
                         "the files were imputed from (for the listwise fit)")
    if source == "simulate":
        columns = simulated_columns(config["data"]["simulate"])
        _check_model_columns("the simulated data", pd.DataFrame(0.0, index=[0, 1], columns=columns), formula, config)
        _check_simulated_scale(config)
        _check_simulation(config)
        _check_tests(config, formula, _trial_data(config))
        _check_compare(config, formula)
        _check_family(config, formula, _trial_data(config), "the simulated data")
        return []
    _check_file_name("data.source", source)
    data = _check_data(source, formula, config, warn)
    _check_tests(config, formula, data)
    _check_compare(config, formula)
    _check_family(config, formula, data, source)
    if imputation["method"] != "external":
        return []
    files = imputation_files(imputation["files"])
    if len(files) < 2:
        raise InputError(f"imputation.files: only {files}; pooling needs at least 2 imputed data sets")
    for path in files:
        _check_file_name("imputation.files", path)
    _check_imputed(files, source, data, formula, config)
    return files


def _check_simulated_scale(config: dict) -> None:
    """The simulated binary outcome's truth is on the logit scale: only a binomial model with the logit link
    estimates those parameters (any other would be compared with a truth on another scale)."""
    model = config["model"]
    if config["data"]["simulate"].get("outcome") == "binary" and \
            (model.get("family", "gaussian"), model.get("link") or "logit") != ("binomial", "logit"):
        raise InputError("data.simulate.outcome binary: its truth is on the logit scale of a binomial model; set "
                         "model.family: binomial (with the logit link)")


def _check_family(config: dict, formula, data: pd.DataFrame, where: str) -> None:
    """model.family, .link, .nagq, .weights and .reml agree with each other and the formula, and the observed
    response fits the family (0/1, a proportion of whole trials, or cbind counts for binomial; counts for Poisson),
    and the imputation keeps it so (``_check_family_imputation``)."""
    model = config["model"]
    name = model.get("family", "gaussian")
    if name == "gaussian":
        extra = [key for key in ("link", "weights") if key in model] + (["nagq"] if model.get("nagq", 1) != 1 else [])
        if extra:
            raise InputError(f"model.{extra[0]}: only for family binomial or poisson, and model.family is gaussian")
        if formula.failures:
            raise InputError("model.formula: cbind(successes, failures) is a binomial response; set "
                             "model.family: binomial")
        return
    try:
        family_of(name, model.get("link"))  # a link the family does not take raises
    except ValueError as error:
        raise InputError(str(error)) from None
    if model["reml"]:
        raise InputError(f"model.reml: true, but family {name} is fitted as glmer fits it, by maximum likelihood "
                         "(REML is for linear mixed models); set model.reml: false")
    if formula.failures and name != "binomial":
        raise InputError(f"model.formula: cbind(successes, failures) is a binomial response, not a {name} one")
    if model.get("nagq", 1) > 1 and (formula.random_terms or not formula.random_intercept):
        raise InputError(f"model.nagq {model['nagq']}: more than 1 quadrature point needs a single, scalar random "
                         "effect, such as (1 | g) (as lme4 allows); set model.nagq: 1 for this formula")
    used = _check_response(config, formula, data, where)
    _check_family_imputation(config, used, data, where)


def _check_response(config: dict, formula, data: pd.DataFrame, where: str) -> list[str]:
    """A GLMM's observed response (with cbind's failures and model.weights) fits model.family; returns those
    columns. Nothing to check for a linear mixed model."""
    model = config["model"]
    if model.get("family", "gaussian") == "gaussian":
        return []
    weights = model.get("weights")
    if weights is not None and weights not in data.columns:
        raise InputError(f"{where}: model.weights {weights!r} is not among the columns {list(data.columns)}")
    used = [formula.response, *(column for _, column in formula.failures), *([weights] if weights else [])]
    observed = data.loc[data[used].notna().all(axis=1)]
    signed = sum(sign * observed[column].to_numpy(dtype=float) for sign, column in formula.failures) \
        if formula.failures else None
    problem = response_problem(model["family"], formula.response, observed[formula.response].to_numpy(dtype=float),
                               signed, None if weights is None else observed[weights].to_numpy(dtype=float))
    if problem:
        raise InputError(f"{where}: {problem}")
    return used


def _check_family_imputation(config: dict, used: list[str], data: pd.DataFrame, where: str) -> None:
    """A GLMM's data can be imputed as its family needs. miceforest imputes a missing 0/1 or count response as
    such: as a category when listed in imputation.categorical, else by predictive mean matching, which draws
    observed values of the column (``mlmi.impute.miceforest.MEAN_MATCH``): never 0.37, never a negative or
    fractional count. Not imputable here: a response with trials (cbind's failures, or model.weights) with a
    missing value in any of its columns (successes imputed apart from their trials could exceed them), and
    anything by the multilevel sampler, whose analysis model is a linear mixed model (its Gaussian likelihood
    would impute for the wrong model). ``used`` is the response first, then its failures and weights columns."""
    imputation, family = config["imputation"], config["model"]["family"]
    if imputation["method"] == "multilevel":
        raise InputError(f"imputation.method multilevel: its sampler imputes for a linear mixed model, and "
                         f"model.family is {family}; use imputation.method miceforest (or external)")
    holes = [column for column in used if data[column].isna().any()]
    if holes and len(used) > 1 and imputation["method"] != "external":
        raise InputError(f"{where}: {holes[0]!r} has missing values; mlmi imputes a 0/1 or count response, not "
                         "one with trials (cbind() or model.weights: successes imputed apart could exceed their "
                         "trials): impute elsewhere and give the files with imputation.method: external")


def _check_tests(config: dict, formula, data: pd.DataFrame) -> None:
    """Every test of ``pooling.tests`` names terms of the model's fixed part as lme4 names them on ``data`` (a
    factor standing for its level columns), or linear constraints over them that parse (``mlmi.pool.hypotheses``);
    each has terms or constraints, not both, and a name of its own."""
    tests = config.get("pooling", {}).get("tests", [])
    if not tests:
        return
    seen = set()
    for test in tests:
        name = test["name"]
        if ("terms" in test) == ("constraints" in test):
            raise InputError(f"pooling.tests {name!r}: give either terms (tested all zero) or constraints "
                             "(such as 'ses - meanses = 0'), not both and not neither")
        if name in seen:
            raise InputError(f"pooling.tests: the name {name!r} is given to two tests; give each test its own name")
        seen.add(name)
    design = fixed_design(formula.fixed, with_gaps_filled(data[formula.variables(data.columns)]))
    for test in tests:
        try:
            hypothesis(test, design.names, design.factors)
        except HypothesisError as error:
            raise InputError(str(error)) from None


def _check_compare(config: dict, formula) -> None:
    """Every comparison of ``pooling.compare`` has a name no test or other comparison has, a formula mlmi fits
    that is nested in model.formula (``mlmi.pool.compare.nesting_problem``), and methods the fits allow: D3
    needs ML fits, and D2 with REML fits the same fixed terms (``reml_problem``). D2 and D3 are computed (and
    checked against mitml) for linear mixed models only: D3's likelihood at the pooled values is a Gaussian one."""
    pooling = config.get("pooling", {})
    comparisons = pooling.get("compare", [])
    family = config["model"].get("family", "gaussian")
    if comparisons and family != "gaussian":
        raise InputError(f"pooling.compare: D2 and D3 compare linear mixed models, and model.family is {family}; "
                         "test the coefficients with pooling.tests (D1) instead, or remove pooling.compare")
    if comparisons and not formula.single:
        raise InputError(f"pooling.compare: comparisons with nested models take a model.formula of one random term "
                         f"such as '(1 + x | school)', and {formula.text!r} has several grouping factors or terms; "
                         "test the coefficients with pooling.tests (D1) instead, or remove pooling.compare")
    seen = {test["name"] for test in pooling.get("tests", [])}
    for comparison in comparisons:
        name, text = comparison["name"], comparison["formula"]
        if name in seen:
            raise InputError(f"pooling.compare: the name {name!r} is given twice (in pooling.tests or "
                             "pooling.compare); give each test and comparison its own name")
        seen.add(name)
        try:
            nested = parse_formula(text)
            nested.single_term()              # compared as model.formula is: one plain random term
        except FormulaError as error:
            raise InputError(f"pooling.compare {name!r}: formula {str(error).removeprefix('model.formula ')}") from None
        problem = nesting_problem(formula, nested)
        if problem:
            raise InputError(f"pooling.compare {name!r}: the formula {text!r} is not nested in model.formula "
                             f"{formula.text!r}: {problem}")
        differ = fixed_terms_differ(formula, nested)
        for method in comparison.get("methods", METHODS):
            problem = reml_problem(method, config["model"]["reml"], differ)
            if problem:
                raise InputError(f"pooling.compare {name!r}: {problem}")


def _check_file_name(key: str, path: str) -> None:
    """A file name Snakemake can take: '{' and '}' in an input path would be read as a wildcard."""
    if "{" in path or "}" in path:
        raise InputError(f"{key}: {path!r} has '{{' or '}}' in its name, which Snakemake reads as a wildcard; "
                         "rename the file (or a copy of it) without them")


def _check_model_columns(where: str, data: pd.DataFrame, formula, config: dict, users_data: bool = False) -> None:
    """Every column the formula and the imputation settings name must be in ``data`` (the user's data when
    ``users_data``: level 2 is found in it, not read again)."""
    columns = list(data.columns)
    named = dict.fromkeys([formula.response, *formula.grouping_columns, *formula.slope_columns])
    absent = [c for c in named if c not in columns]
    if absent:
        raise InputError(f"{where}: model.formula uses {absent}, not among the columns {columns}")
    filled = with_gaps_filled(data[formula.variables(columns)])
    try:
        fixed_design(formula.fixed, filled)
    except ValueError as error:  # formulaic names the unknown variable in its own words
        raise InputError(f"{where}: the fixed part {formula.fixed!r} of model.formula cannot be built "
                         f"from the columns {columns}: {error}") from None
    for bar in formula.bars:
        if not bar.plain_slopes:    # an expression or a factor: built as the fit builds it
            try:
                fixed_design(bar.terms, filled)
            except ValueError as error:
                raise InputError(f"{where}: the random term ({bar.lme4_text}) of model.formula cannot be built "
                                 f"from the columns {columns}: {error}") from None
    roles = {} if config["imputation"]["method"] == "external" else \
        imputation_roles(config, data if users_data else None)
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
    """A small complete data set of the generator's settings, for checks at start-up (a copy: simulated once
    per settings, which a study's scenarios mostly share)."""
    settings = {**config["data"]["simulate"], "n_schools": TRIAL_SCHOOLS}
    key = repr(settings)
    if key not in _TRIALS:
        try:
            _TRIALS[key] = simulate_hsb(settings, np.random.default_rng(0))[0]
        except ValueError as error:
            raise InputError(f"data.simulate: {error}") from None
    return _TRIALS[key].copy()


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
    """Generator settings and missingness that cannot work, found on a small trial data set; a grouping column
    is an id, never made missing."""
    trial, formula = _trial_data(config), model_formula(config)
    ids = [column for column in config["missingness"]["prob"] if column in formula.grouping_columns]
    if ids:
        raise InputError(f"missingness.prob: {ids[0]!r} is a grouping column of model.formula, an id that is never "
                         "made missing (nor imputed); take it out of missingness.prob")
    try:
        ampute_from_config(trial, config["missingness"], np.random.default_rng(0), group=formula.outer_group)
    except ValueError as error:
        raise InputError(f"missingness: {error}") from None


def _check_data(path: str, formula, config: dict, warn) -> pd.DataFrame:
    """The incomplete data, returned once checked: readable, has the model's columns, finite numbers where
    numbers belong, observed and varying model variables, a group for every row, several groups, random
    effects lme4 can identify (and, with random slopes, no group of one)."""
    data = read_table(path, na_values=config["data"]["na_values"])
    _check_model_columns(path, data, formula, config, users_data=True)
    used = formula.variables(data.columns)
    if config["imputation"]["method"] != "external":  # every column not excluded predicts the imputations
        excluded = listed_roles(config)["exclude"]   # level 2 would read the file again
        used = [c for c in data.columns if c in used or c not in excluded]
    numbers = [c for c in used if c not in formula.grouping_columns]
    check_numbers(path, data, numbers, formula)
    check_magnitudes(path, data, numbers)
    check_observed(path, data, formula)
    check_groups(path, data, formula, warn, residual=config["model"].get("family", "gaussian") == "gaussian")
    return data


def _check_imputed(files: list[str], source: str, data: pd.DataFrame, formula, config: dict) -> None:
    """Imputed files: the columns of the first file and the model's, the data's rows in the data's order with
    its observed values, and model variables completed with finite numbers."""
    first = None
    for path in files:
        imputed = read_table(path, na_values=config["data"]["na_values"])
        first = imputed if first is None else first
        if list(imputed.columns) != list(first.columns):
            raise InputError(f"{path}: columns {list(imputed.columns)} differ from {files[0]}'s {list(first.columns)}")
        _check_model_columns(path, imputed, formula, config)
        if len(imputed) != len(data):
            raise InputError(f"{path}: {len(imputed)} rows, but {source} has {len(data)}; every imputed data set "
                             f"must have the rows of the incomplete data, in its order: give the files imputed from "
                             f"{source}")
        variables = formula.variables(imputed.columns)
        numbers = [c for c in variables if c not in formula.grouping_columns]
        check_numbers(path, imputed, numbers, formula)
        _check_response(config, formula, imputed, path)
        holes = [c for c in variables if imputed[c].isna().any()]
        if holes:
            raise InputError(f"{path}: missing values left in model variables {holes}, the first of {holes[0]!r} on "
                             f"{cells(path, imputed[holes[0]].isna())}; give completed data sets")
        check_magnitudes(path, imputed, numbers)
        check_same_rows(path, imputed, source, data, formula)
