"""Sensitivity studies: scenarios as overrides of the base config, replications, and the
performance of complete-data, listwise and pooled estimates against the known truth.

Performance measures and their Monte Carlo standard errors follow Morris, White and
Crowther (2019), "Using simulation studies to evaluate statistical methods", Statistics
in Medicine 38, 2074-2102, table 6.
"""
import copy
import itertools
import json
import re
import zlib

import numpy as np
import pandas as pd

from mlmi.inputs import InputError, check_inputs, imputation_roles, schema_problem
from mlmi.fit_record import wald_table
from mlmi.variance_components import wald_intervals

METHODS = ("complete", "listwise", "pooled")
#: A scenario's name, which names a folder: letters, digits and ``_.-``, not dots alone ('.' and '..'
#: are the folder itself and its parent); also the segments of the workflow's ``{run}`` wildcard.
NAME = r"(?!\.+(?:/|$))[A-Za-z0-9_.-]+"
#: Config keys the workflow reads once for the whole study, so a scenario cannot vary them: the results folder,
#: the study itself, where the data come from, and what the rules write (their outputs cannot differ by run).
STUDY_WIDE = ("scenario", "study", "data.source", "data.na_values", "imputation.files", "pooling.mertools_legacy")
SUMMARY_COLUMNS = ["scenario", "method", "term", "n_reps", "mean_estimate", "bias", "bias_mcse", "rel_bias",
                   "rel_bias_mcse", "emp_se", "emp_se_mcse", "model_se", "model_se_mcse", "rmse", "rmse_mcse",
                   "coverage", "coverage_mcse", "coverage_n", "width", "width_mcse", "fmi", "fmi_mcse"]


def merge(base: dict, override: dict) -> dict:
    """``override`` merged recursively over a copy of ``base`` (as Snakemake merges configs)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else copy.deepcopy(value)
    return merged


def dotted(key: str, value) -> dict:
    """``{"a": {"b": value}}`` from ``"a.b"``."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def dotted_keys(override: dict, prefix: str = "") -> list[str]:
    """Every leaf key of a nested override, dotted: ``{"a": {"b": 1}}`` gives ``["a.b"]``."""
    keys = []
    for key, value in override.items():
        name = f"{prefix}{key}"
        keys += dotted_keys(value, f"{name}.") if isinstance(value, dict) and value else [name]
    return keys


def study_wide_key(override: dict) -> str | None:
    """The first key of a scenario's override that cannot vary per scenario (``STUDY_WIDE``), or None."""
    return next((key for key in dotted_keys(override)
                 if any(key == wide or key.startswith(f"{wide}.") for wide in STUDY_WIDE)), None)


def _label(key: str, value) -> str:
    """A path-safe ``name-value`` for one grid setting (the key's last part)."""
    return re.sub(r"[^A-Za-z0-9.]+", "", key.split(".")[-1]) + "-" + re.sub(r"[^A-Za-z0-9.]+", "", str(value))


def scenarios(study: dict) -> dict[str, dict]:
    """Scenario name -> override of the base config: named scenarios times the grid's combinations."""
    named = study.get("scenarios") or {"base": {}}
    grid = study.get("grid") or {}
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    expanded = {}
    for (name, override), combo in itertools.product(named.items(), combos):
        label = "_".join([*([name] if len(named) > 1 or not combo else []),
                          *(_label(key, value) for key, value in combo.items())])
        for key, value in combo.items():
            override = merge(override, dotted(key, value))
        if not re.fullmatch(NAME, label):
            raise ValueError(f"study: the scenario name {label!r} is not allowed; name it with letters, digits, "
                             "'_', '.' and '-', not dots alone (it names a folder)")
        if label in expanded:
            raise ValueError(f"study: two scenarios are both named {label!r}; give the named scenarios "
                             "or grid values names that differ")
        expanded[label] = override
    return expanded


def plan_study(config: dict, schema: dict) -> dict[str, dict]:
    """Scenario name -> its whole config (the base with the scenario's override, ``auto`` imputation
    lists made explicit), each checked; {} when the config has no ``study``."""
    if not config.get("study"):
        return {}
    base = {key: value for key, value in config.items() if key != "study"}
    if base["data"]["source"] != "simulate" or base["imputation"]["method"] == "external":
        raise InputError("study: a sensitivity study needs data.source: simulate (the truth must be known) and "
                         "an imputation.method that imputes here: miceforest or multilevel")
    try:
        overrides = scenarios(config["study"])
    except ValueError as error:
        raise InputError(str(error)) from None
    for name, override in overrides.items():
        key = study_wide_key(override)
        if key:
            raise InputError(f"study scenario {name}: {key} cannot vary per scenario (the workflow reads it once for "
                             "the whole study); set it in the base config, or run a second study")
    planned = {name: merge(base, override) for name, override in overrides.items()}
    for name, scenario_config in planned.items():
        problem = schema_problem(scenario_config, schema)
        if problem:
            raise InputError(f"study scenario {name}: {problem}")
        try:
            scenario_config["imputation"].update(imputation_roles(scenario_config))
            check_inputs(scenario_config)
        except InputError as error:
            raise InputError(f"study scenario {name}: {error}") from None
    return planned


def run_parts(run: str) -> tuple[str, int] | None:
    """(scenario, replication) of a study run ``<study>/<scenario>/rep_<r>``, or None for a single run."""
    parts = run.split("/")
    return (parts[1], int(parts[2].removeprefix("rep_"))) if len(parts) == 3 else None


def scenario_key(name: str) -> int:
    """A stable number for a scenario name, so seeds do not depend on scenario order."""
    return zlib.crc32(name.encode())


def data_key(config: dict) -> int:
    """A stable number for what makes a scenario's data: its ``data`` and ``missingness`` settings.

    Simulation and amputation seeds derive from it (not from the scenario's name), so scenarios that
    differ only in how they impute, fit or pool see identical data sets in every replication: a paired
    comparison, whose differences carry no Monte Carlo noise from the data.
    """
    made_of = {key: config[key] for key in ("data", "missingness")}
    return zlib.crc32(json.dumps(made_of, sort_keys=True).encode())


def replication_estimates(*, pooled: pd.DataFrame, variance_components: pd.DataFrame, listwise: dict,
                          complete: dict) -> pd.DataFrame:
    """One replication's estimates by method: fixed effects with SEs and intervals, and the random-effect SDs,
    correlations and residual SD with their intervals on the log / Fisher-z scale (``mlmi.variance_components``:
    the pooled table ``variance_components``, and each single fit's Wald interval), whose coverage the summary
    shows. std_error is the delta method's SE on the original scale."""
    fits = (("listwise", listwise), ("complete", complete))
    fixed = [pooled.assign(method="pooled"),
             *(wald_table(fit).assign(method=name, fmi=np.nan) for name, fit in fits)]
    variance = [variance_components.assign(method="pooled"),
                *(wald_intervals(fit).assign(method=name, fmi=np.nan) for name, fit in fits)]
    columns = ["method", "term", "estimate", "std_error", "conf_low", "conf_high", "fmi"]
    return pd.concat([*fixed, *variance], ignore_index=True).reindex(columns=columns)


def truth_by_term(truth: dict) -> dict[str, float]:
    """The true value of every term a replication estimates, named as in the estimates."""
    re = truth["random_effects"]
    return {**truth["fixed_effects"], **{f"sd__{name}": value for name, value in re["sd"].items()},
            **{f"cor__{pair}": value for pair, value in re["cor"].items()}, "sd__Observation": truth["sigma"]}


def performance(estimates: pd.DataFrame, true_value: float) -> dict:
    """Morris et al.'s measures for one scenario, method and term, each with its MCSE. Coverage and width are over
    the ``coverage_n`` replications that have an interval: a singular fit's SD has none (``mlmi.vc_wald``)."""
    theta, se = estimates["estimate"].to_numpy(), estimates["std_error"].to_numpy()
    low, high, fmi = (estimates[c].to_numpy() for c in ("conf_low", "conf_high", "fmi"))
    n = len(theta)
    emp_se = theta.std(ddof=1)
    squared = (theta - true_value) ** 2
    mse = squared.mean()
    model_var = np.mean(se**2)
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
        "model_se": np.sqrt(model_var), "model_se_mcse": np.sqrt(np.var(se**2, ddof=1) / (4 * n * model_var)),
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
        value = truth_by_term(truths[scenario]).get(term)
        if value is not None:
            rows.append({"scenario": scenario, "method": method, "term": term, **performance(group, value)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
