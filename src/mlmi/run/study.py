"""Sensitivity studies: each scenario checked as a run's config is, and the performance of complete-data,
listwise and pooled estimates against the known truth, over the replications. The scenarios themselves, as
overrides of the base config, are planned in ``mlmi.run.plan``.

Performance measures and their Monte Carlo standard errors follow Morris, White and
Crowther (2019), "Using simulation studies to evaluate statistical methods", Statistics
in Medicine 38, 2074-2102, table 6.
"""
import numpy as np
import pandas as pd

from mlmi.fit.record import FitRecord
from mlmi.pool.summarize import true_random_value, truth_parameters
from mlmi.pool.variance_components import wald_intervals
from mlmi.run.plan import InputError, Plan

METHODS = ("complete", "listwise", "pooled")
SUMMARY_COLUMNS = ["scenario", "method", "term", "n_reps", "mean_estimate", "bias", "bias_mcse", "rel_bias",
                   "rel_bias_mcse", "emp_se", "emp_se_mcse", "model_se", "model_se_mcse", "rmse", "rmse_mcse",
                   "coverage", "coverage_mcse", "coverage_n", "width", "width_mcse", "fmi", "fmi_mcse"]


def plan_study(config: dict, schema: dict) -> dict[str, dict]:
    """Scenario name -> its whole config (the base with the scenario's override, ``auto`` imputation
    lists made explicit), each checked as the base config is; {} when the config has no ``study``."""
    from mlmi.run.inputs import check_inputs, schema_problem  # the main process's: a replication job needs neither

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


def replication_estimates(*, pooled: pd.DataFrame, random_effects: pd.DataFrame, variance_components: pd.DataFrame,
                          listwise: FitRecord, complete: FitRecord) -> pd.DataFrame:
    """One replication's estimates by method: fixed effects with SEs and intervals, and the random-effect SDs,
    correlations and residual SD, named by ``study_terms``. The pooled ones are merTools' mean over the imputations
    (``random_effects``, the estimate the study has always judged), with the 95% interval and delta-method SE of
    ``variance_components`` (Rubin's rules on the log / Fisher-z scale, ``mlmi.pool.variance_components``), whose
    coverage the summary shows; a single (listwise or complete-data) fit's have its own Wald interval on those
    scales."""
    fits = (("listwise", listwise), ("complete", complete))
    fixed = [pooled.assign(method="pooled"),
             *(fit.wald_table().assign(method=name, fmi=np.nan) for name, fit in fits)]
    intervals = variance_components[["group", "term", "std_error", "conf_low", "conf_high"]]
    pooled_variance = random_effects[["group", "term", "estimate"]].merge(intervals, on=["group", "term"], how="left")
    variance = [parameters.assign(term=study_terms(parameters), method=name)
                for name, parameters in [("pooled", pooled_variance),
                                         *((name, wald_intervals(fit).assign(fmi=np.nan)) for name, fit in fits)]]
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
    (``mlmi.pool.summarize.same_factor``); an unqualified one only when a single true factor has it."""
    if term in truth["fixed_effects"]:
        return truth["fixed_effects"][term]
    if term == "sd__Observation":
        return truth["sigma"]
    name, _, group = term.removesuffix(")").rpartition(" (") if term.endswith(")") and " (" in term \
        else (term, "", "")
    if group:
        return true_random_value(truth, group, name)
    found = [row["estimate"] for row in truth_parameters(truth) if row["term"] == term]
    return found[0] if len(found) == 1 else None


def performance(estimates: pd.DataFrame, true_value: float) -> dict:
    """Morris et al.'s measures for one scenario, method and term, each with its MCSE. Coverage and width are over
    the ``coverage_n`` replications that have an interval, and the model SE over those with an SE: a singular fit's
    SD has neither (``mlmi.fit.vc_wald``)."""
    theta, se = estimates["estimate"].to_numpy(), estimates["std_error"].to_numpy()
    low, high, fmi = (estimates[c].to_numpy() for c in ("conf_low", "conf_high", "fmi"))
    n = len(theta)
    emp_se = theta.std(ddof=1)
    squared = (theta - true_value) ** 2
    mse = squared.mean()
    se = se[np.isfinite(se)]                     # a singular fit's SD has none
    model_var = np.mean(se**2) if len(se) else np.nan
    has_interval = np.isfinite(low) & np.isfinite(high)      # none: a point estimate only, or a singular fit's SD
    n_intervals = int(has_interval.sum())
    covered = (low <= true_value) & (true_value <= high)
    coverage = covered[has_interval].mean() if n_intervals else np.nan
    widths = (high - low)[has_interval]
    return {
        "n_reps": n, "mean_estimate": theta.mean(),
        "bias": theta.mean() - true_value, "bias_mcse": emp_se / np.sqrt(n),
        "rel_bias": (theta.mean() - true_value) / true_value if true_value else np.nan,
        "rel_bias_mcse": emp_se / np.sqrt(n) / abs(true_value) if true_value else np.nan,
        "emp_se": emp_se, "emp_se_mcse": emp_se / np.sqrt(2 * (n - 1)),
        "model_se": np.sqrt(model_var),
        "model_se_mcse": np.sqrt(np.var(se**2, ddof=1) / (4 * len(se) * model_var)) if len(se) > 1 else np.nan,
        "rmse": np.sqrt(mse),
        "rmse_mcse": np.sqrt(np.sum((squared - mse) ** 2) / (n * (n - 1))) / (2 * np.sqrt(mse)) if mse > 0 else 0.0,
        "coverage": coverage,
        "coverage_mcse": np.sqrt(coverage * (1 - coverage) / n_intervals) if n_intervals else np.nan,
        "coverage_n": n_intervals,
        "width": widths.mean() if n_intervals else np.nan,
        "width_mcse": np.std(widths, ddof=1) / np.sqrt(n_intervals) if n_intervals > 1 else np.nan,
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
