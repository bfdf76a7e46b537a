"""Sensitivity studies: each scenario checked as a run's config is, and the performance of complete-data,
listwise and pooled estimates against the known truth, over the replications. The scenarios themselves, as
overrides of the base config, are planned in ``mlmi.plan``.

Performance measures and their Monte Carlo standard errors follow Morris, White and
Crowther (2019), "Using simulation studies to evaluate statistical methods", Statistics
in Medicine 38, 2074-2102, table 6.
"""
import numpy as np
import pandas as pd

from mlmi.fit_record import wald_table
from mlmi.inputs import InputError, check_inputs, schema_problem
from mlmi.plan import Plan
from mlmi.summarize import random_effect_parameters, true_random_value

METHODS = ("complete", "listwise", "pooled")
SUMMARY_COLUMNS = ["scenario", "method", "term", "n_reps", "mean_estimate", "bias", "bias_mcse", "rel_bias",
                   "rel_bias_mcse", "emp_se", "emp_se_mcse", "model_se", "model_se_mcse", "rmse", "rmse_mcse",
                   "coverage", "coverage_mcse", "width", "width_mcse", "fmi", "fmi_mcse"]


def plan_study(config: dict, schema: dict) -> dict[str, dict]:
    """Scenario name -> its whole config (the base with the scenario's override, ``auto`` imputation
    lists made explicit), each checked as the base config is; {} when the config has no ``study``."""
    plan = Plan(config)
    for name, scenario_config in plan.scenarios.items():
        problem = schema_problem(scenario_config, schema)
        if problem:
            raise InputError(f"study scenario {name}: {problem}")
        try:
            check_inputs(plan.resolved(name))
        except InputError as error:
            raise InputError(f"study scenario {name}: {error}") from None
    return {name: plan.resolved(name) for name in plan.scenarios}


def replication_estimates(*, pooled: pd.DataFrame, random_effects: pd.DataFrame, listwise: dict,
                          complete: dict) -> pd.DataFrame:
    """One replication's estimates by method: fixed effects with SEs and intervals, and the
    random-effect SDs, correlation and residual SD (point estimates only), named by ``study_terms``."""
    fixed = [pooled.assign(method="pooled"),
             *(wald_table(fit).assign(method=name, fmi=np.nan) for name, fit in (("listwise", listwise),
                                                                                  ("complete", complete)))]
    variance = [random_effects.assign(term=study_terms(random_effects))[["term", "estimate"]].assign(method="pooled"),
                *(parameters.assign(term=study_terms(parameters))[["term", "estimate"]].assign(method=name)
                  for name, parameters in (("listwise", pd.DataFrame(random_effect_parameters(listwise))),
                                           ("complete", pd.DataFrame(random_effect_parameters(complete)))))]
    columns = ["method", "term", "estimate", "std_error", "conf_low", "conf_high", "fmi"]
    return pd.concat([*fixed, *variance], ignore_index=True).reindex(columns=columns)


def study_terms(parameters: pd.DataFrame) -> pd.Series:
    """Random-effect parameters (``group, term`` rows) named as a study's tables name them: broom.mixed's term
    (``sd__ses``, ``sd__Observation``), followed by its grouping factor in parentheses when the model has several
    (``sd__(Intercept) (classid:schid)``), as the report's panels are titled, so each parameter has a name of its
    own."""
    several = parameters.loc[parameters["group"] != "Residual", "group"].nunique() > 1
    qualify = several & (parameters["group"] != "Residual")
    return parameters["term"].where(~qualify, parameters["term"] + " (" + parameters["group"] + ")")


def true_value(truth: dict, term: str) -> float | None:
    """The true value of a term a replication estimates (``study_terms``' names), or None when the truth has
    none: a fixed effect, sigma, or a random-effect parameter of the named grouping factor
    (``mlmi.summarize.same_factor``); an unqualified one only when a single true factor has it."""
    if term in truth["fixed_effects"]:
        return truth["fixed_effects"][term]
    if term == "sd__Observation":
        return truth["sigma"]
    name, _, group = term.removesuffix(")").rpartition(" (") if term.endswith(")") and " (" in term \
        else (term, "", "")
    if group:
        return true_random_value(truth, group, name)
    found = [row["estimate"] for row in random_effect_parameters(truth) if row["term"] == term]
    return found[0] if len(found) == 1 else None


def performance(estimates: pd.DataFrame, true_value: float) -> dict:
    """Morris et al.'s measures for one scenario, method and term, each with its MCSE."""
    theta, se = estimates["estimate"].to_numpy(), estimates["std_error"].to_numpy()
    low, high, fmi = (estimates[c].to_numpy() for c in ("conf_low", "conf_high", "fmi"))
    n = len(theta)
    emp_se = theta.std(ddof=1)
    squared = (theta - true_value) ** 2
    mse = squared.mean()
    model_var = np.mean(se**2)
    covered = (low <= true_value) & (true_value <= high)
    coverage = covered.mean() if np.isfinite(low).all() else np.nan
    return {
        "n_reps": n, "mean_estimate": theta.mean(),
        "bias": theta.mean() - true_value, "bias_mcse": emp_se / np.sqrt(n),
        "rel_bias": (theta.mean() - true_value) / true_value if true_value else np.nan,
        "rel_bias_mcse": emp_se / np.sqrt(n) / abs(true_value) if true_value else np.nan,
        "emp_se": emp_se, "emp_se_mcse": emp_se / np.sqrt(2 * (n - 1)),
        "model_se": np.sqrt(model_var), "model_se_mcse": np.sqrt(np.var(se**2, ddof=1) / (4 * n * model_var)),
        "rmse": np.sqrt(mse),
        "rmse_mcse": np.sqrt(np.sum((squared - mse) ** 2) / (n * (n - 1))) / (2 * np.sqrt(mse)) if mse > 0 else 0.0,
        "coverage": coverage, "coverage_mcse": np.sqrt(coverage * (1 - coverage) / n),
        "width": np.mean(high - low), "width_mcse": np.std(high - low, ddof=1) / np.sqrt(n),
        "fmi": np.mean(fmi), "fmi_mcse": np.std(fmi, ddof=1) / np.sqrt(n),
    }


def summarize_study(estimates: pd.DataFrame, truths: dict[str, dict]) -> pd.DataFrame:
    """One row per scenario, method and term from every replication's estimates.

    ``estimates`` has ``scenario, replication`` beside the columns of
    ``replication_estimates``; ``truths`` maps each scenario to its truth.json.
    """
    rows = []
    for (scenario, method, term), group in estimates.groupby(["scenario", "method", "term"], sort=False):
        value = true_value(truths[scenario], term)
        if value is not None:
            rows.append({"scenario": scenario, "method": method, "term": term, **performance(group, value)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
