"""What is imputed how, and whether each imputation model can carry the analysis model (design §9).

An imputation model must be at least as general as the analysis model, or the pooled estimates
are biased towards what the imputation assumed (Meng 1994, congeniality). ``imputation_models``
says, for each incomplete column, at which level it is imputed, by what model from which
predictors, and, where that model cannot carry ``model.formula``, the config change that fixes it:

- a random slope, or a product or transformation (``x:z``, ``I(x^2)``), of an imputed variable
  needs the multilevel sampler: a single-level imputation has neither;
- a level-1 variable needs its cluster in the imputation (cluster means as predictors at least);
- a level-2 variable imputed per row varies within its cluster, which it cannot.

Pure functions of the config, the parsed formula and the incomplete data; this module imports no
imputation library, so the workflow reads ``METHOD_SETTINGS`` from it at no cost.
"""
import re

import pandas as pd

from mlmi.data.levels import level2_columns
from mlmi.fit.formula import lme4_term

#: The keys of the ``imputation`` config block each method takes (``mlmi.impute.miceforest.impute``).
METHOD_SETTINGS = {
    "miceforest": ("iterations", "exclude", "categorical", "level2", "cluster_means", "bootstrap",
                   "cluster_predictors"),
    "multilevel": ("burn_in", "exclude", "categorical", "level2", "cluster_means"),
}
COLUMNS = ["variable", "level", "in_model", "imputed_by", "carries_model", "warning"]
#: The config change that gives an imputation what the analysis model needs.
TO_MULTILEVEL = "set imputation.method: multilevel"
#: The same for a model of several grouping factors, which the multilevel sampler does not take.
TO_EXTERNAL = ("impute it elsewhere with a model that has it and give the files with imputation.method: external "
               "(the multilevel method takes one grouping factor)")


def method_settings(imputation: dict) -> dict:
    """The settings of an ``imputation`` config block (its ``auto`` lists made explicit) that its method takes."""
    return {key: imputation[key] for key in METHOD_SETTINGS[imputation["method"]]}


def imputation_models(imputation: dict, formula, data: pd.DataFrame) -> pd.DataFrame:
    """One row per incomplete column of ``data``: how it is imputed and whether that can carry ``formula``.

    Parameters
    ----------
    imputation : dict
        The ``imputation`` config block with its ``auto`` lists made explicit
        (``mlmi.run.inputs.imputation_roles``); method ``miceforest`` or ``multilevel``.
    formula : mlmi.fit.formula.MixedFormula
        The parsed ``model.formula``.
    data : DataFrame
        The incomplete data.

    Returns
    -------
    DataFrame
        ``variable``; ``level`` (1, or 2 for a level-2 or cluster-mean column); ``in_model`` (a
        variable of ``model.formula``); ``imputed_by`` (the model and its predictors, in words);
        ``carries_model`` (False when the imputation cannot carry the analysis model for this
        variable); ``warning`` (why not, and the config change that fixes it; empty otherwise).
    """
    group, exclude = formula.outer_group, set(imputation["exclude"])
    level2, means = list(imputation["level2"]), dict(imputation["cluster_means"])
    ids = set(formula.grouping_columns)
    incomplete = [c for c in data.columns if data[c].isna().any() and c not in ids]
    level1 = [c for c in data.columns if c not in {*ids, *exclude, *level2, *means}]
    model = set(formula.variables(data.columns))
    rows = []
    for column in incomplete:
        if column in exclude:
            how, problem = "not imputed (imputation.exclude): its missing values stay", \
                f"imputation.exclude keeps {column} out of the imputation: take it out of imputation.exclude"
        elif column in means:
            how, problem = f"recomputed as the {group} mean of the imputed {means[column]} (passive)", ""
        elif column in level2:
            how, problem = _level2_model(imputation, column, level2, level1, group), ""
        else:
            how, problem = _level1_model(imputation, column, data, formula, level1)
        level = 2 if column in level2 or column in means or level2_columns(data, group, [column]) else 1
        warning = problem if column in model else ""      # only the analysis model's variables must carry it
        rows.append((column, level, column in model, how, not warning, warning))
    return pd.DataFrame(rows, columns=COLUMNS)


def _level2_model(imputation: dict, column: str, level2, level1, group: str) -> str:
    """How a level-2 column is imputed: from its cluster, else by a cluster-level model."""
    if imputation["method"] == "multilevel":
        model = "the multilevel sampler's level-2 model"
    else:
        others = [c for c in level2 if c != column]
        model = (f"miceforest on one row per {group} from {_listed(others)}{' and ' if others else ''}"
                 f"the {group} means of {_listed(level1)}")
    return f"its {group}'s observed value; a {group} without one: {model}, once per {group}"


def _level1_model(imputation: dict, column: str, data: pd.DataFrame, formula, level1) -> tuple[str, str]:
    """How a level-1 column is imputed, and why that cannot carry the analysis model ('' if it can)."""
    group = formula.outer_group
    predictors = [c for c in data.columns if c != column and c not in imputation["exclude"]]
    if imputation["method"] == "multilevel":
        return (f"the multilevel sampler: its own model times the likelihood of model.formula (random "
                f"{_listed(formula.re_names)} by {group}), from {_listed(predictors)}"), ""
    factors = [":".join(factor) for factor in formula.grouping_factors if factor != (group,)]
    extras = [f"the {' and '.join([group, *factors])} means of {_listed(level1)}"] \
        if imputation["cluster_predictors"] else []
    how = (f"miceforest, single-level, from {_listed(predictors + extras)}"
           + (f"; trained on a bootstrap sample of {group}s" if imputation["bootstrap"] else ""))
    fix = TO_MULTILEVEL if formula.single else TO_EXTERNAL
    if column in formula.slope_columns:
        return how, f"{column} has a random slope in model.formula but miceforest imputes it without one: {fix}"
    product = _product_term(formula.fixed, column)
    if product:
        return how, f"{column} enters model.formula in {product}, which miceforest does not model: {fix}"
    if level2_columns(data, group, [column]):
        return how, (f"{column} is constant within every {group} in its observed values but is imputed per "
                     f"row: add it to imputation.level2 (or set imputation.level2: auto)")
    if not imputation["cluster_predictors"]:
        return how, (f"miceforest imputes {column} without its {group}: set imputation.cluster_predictors: true"
                     + (f" (or {TO_MULTILEVEL})" if formula.single else ""))
    return how, ""


def _product_term(fixed: str, column: str) -> str | None:
    """The first term of the fixed part in which ``column`` enters other than as itself or a factor of
    itself (an interaction, power or transformation), or None."""
    name = re.compile(rf"(?<![A-Za-z0-9_.]){re.escape(column)}(?![A-Za-z0-9_.])")
    alone = {column, f"C({column})", f"factor({column})"}
    from formulaic import Formula  # here: the workflow reads METHOD_SETTINGS in every run's main process

    for term in Formula(fixed):
        factors = [str(factor) for factor in term.factors]
        if any(name.search(factor) for factor in factors) and not (len(factors) == 1 and factors[0] in alone):
            return ":".join(lme4_term(factor) for factor in factors)
    return None


def _listed(columns) -> str:
    """Columns as words: 'a, b and c', or 'nothing'."""
    columns = list(columns)
    return " and ".join(filter(None, [", ".join(columns[:-1]), *columns[-1:]])) or "nothing"
