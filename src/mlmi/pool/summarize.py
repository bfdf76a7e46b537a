"""merTools-style summaries of m fits, with merTools' defects corrected (design §5.3).

Random-effect parameters are averaged with their spread over imputations (named
``between_sd``, since it is not a standard error); conditional modes are averaged over all
m fits and Rubin-pooled with their conditional variances.
"""
import numpy as np
import pandas as pd

from mlmi.fit.record import ConditionalModes, FitRecord, parameter_rows, per_term
from mlmi.pool.rubin import rubin


def truth_parameters(truth: dict) -> list[dict]:
    """The true SDs, correlations and residual SD of a truth.json (design §4: a fit record's shape of the random
    part), named as a fit's ``random_parameters`` are; no residual SD for a binomial outcome's truth."""
    sigma = truth["sigma"] if truth.get("family", "gaussian") == "gaussian" else None
    return parameter_rows(per_term(truth["random_effects"]), sigma)


def same_factor(fitted: str, true: str) -> bool:
    """Whether a fitted grouping factor is the truth's ``true`` one: the same columns (``schid:classid`` is
    ``classid:schid``), or the true factor's first column alone (the simulator's ``classid``, unique across
    schools, groups as ``classid:schid`` does)."""
    columns = true.split(":")
    return set(fitted.split(":")) == set(columns) or fitted == columns[0]


def true_random_value(truth: dict, group: str, term: str) -> float | None:
    """The true value of a fit's random-effect parameter ``term`` (broom.mixed's name) of grouping factor
    ``group`` (``Residual`` for sigma), from a truth.json; None when the truth has no such parameter."""
    return next((row["estimate"] for row in truth_parameters(truth)
                 if row["term"] == term and same_factor(group, row["group"])), None)


def random_effect_stats(fits: list[FitRecord]) -> pd.DataFrame:
    """merTools' ``modelRandEffStats``: mean over imputations and SD over imputations (``between_sd``)."""
    long = pd.DataFrame([row for fit in fits for row in fit.random_parameters])
    grouped = long.groupby(["group", "term"], sort=False)["estimate"]
    return pd.DataFrame({"estimate": grouped.mean(), "between_sd": grouped.std(ddof=1)}).reset_index()


def varcorr(fits: list[FitRecord]) -> pd.DataFrame:
    """lme4's ``as.data.frame(VarCorr())`` averaged as merTools does: mean SDs, mean correlations.

    vcov is derived from the averaged SDs and correlations (sd^2 and cor * sd_i * sd_j), so
    each row's two columns describe the same averaged matrix.
    """
    stats = random_effect_stats(fits).set_index(["group", "term"])["estimate"]
    rows = []
    for re in fits[0].variance_components:
        group, names = re.group, re.terms
        sd = {name: stats[(group, f"sd__{name}")] for name in names}
        rows += [(group, name, None, sd[name] ** 2, sd[name]) for name in names]
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                cor = stats[(group, f"cor__{first}.{second}")]
                rows.append((group, first, second, cor * sd[first] * sd[second], cor))
    if fits[0].is_linear:
        residual = stats[("Residual", "sd__Observation")]
        rows.append(("Residual", None, None, residual ** 2, residual))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def pool_ranef(fits: list[FitRecord]) -> pd.DataFrame:
    """Conditional modes averaged over ALL m fits, SEs Rubin-pooled from conditional variances.

    merTools' ``ranef(modList)`` divides the first fit's modes by m; this is the mean of every
    fit's modes, with std_error = sqrt(ubar + (1 + 1/m) b) per level and term; rows ``group, level, term``,
    random terms in lme4's order.
    """
    per_fit = [fit.ranef for fit in fits]
    return pd.concat([_pool_term([terms[i] for terms in per_fit]) for i in range(len(per_fit[0]))],
                     ignore_index=True)


def _pool_term(terms: list[ConditionalModes]) -> pd.DataFrame:
    """One random term's conditional modes pooled over the fits (``pool_ranef``)."""
    first = terms[0]
    if any(term.levels != first.levels for term in terms):
        raise ValueError(f"the fits have different levels of the grouping factor {first.group!r}; cannot pool "
                         "conditional modes")
    modes = np.array([term.modes for term in terms])
    variances = np.array([np.diagonal(term.cond_var, axis1=1, axis2=2) for term in terms])
    m, n_levels, q = modes.shape
    pooled = rubin(pd.DataFrame(modes.reshape(m, -1)), pd.DataFrame(variances.reshape(m, -1)))
    return pd.DataFrame({
        "group": first.group,
        "level": np.repeat(first.levels, q),
        "term": np.tile(first.terms, n_levels),
        "estimate": pooled["qbar"].to_numpy(),
        "std_error": np.sqrt(pooled["t"].to_numpy()),
    })


def groups_cell(n_groups: dict[str, int]) -> int | str:
    """A fit's groups in one cell: the count of its one grouping factor, or ``"class:school 100; school 25"``."""
    if len(n_groups) == 1:
        return next(iter(n_groups.values()))
    return "; ".join(f"{name} {count}" for name, count in n_groups.items())


def model_info(records: dict[str, FitRecord], labels=None) -> pd.DataFrame:
    """``pooled/model_info.csv``: one row per fit (label to record: the imputations' and the listwise one): size,
    criteria, sigma (lme4's: 1 for a GLMM) and convergence; with ``labels``, the imputations that were pooled,
    a ``pooled`` column saying which rows they are (``mlmi.pool.failed_fits.left_out`` reads it)."""
    info = pd.DataFrame([{
        "imputation": label, "n_obs": fit.n_obs, "n_levels": fit.n_levels, "n_groups": groups_cell(fit.n_groups),
        "aic": fit.aic, "bic": fit.bic, "loglik": fit.loglik, "reml_criterion": fit.reml_criterion, "sigma": fit.sigma,
        "converged": fit.converged, "singular": fit.singular, "warnings": "; ".join(fit.warnings),
    } for label, fit in records.items()])
    if labels is not None:
        info["pooled"] = info["imputation"].isin(list(labels))
    return info


def listwise_fixed_effects(listwise: FitRecord) -> pd.DataFrame:
    """``pooled/listwise_fixed_effects.csv``: the complete-case fit's fixed effects with Wald intervals (lme4's
    ``confint(method = "Wald")``), the vignette's comparison beside the pooled ones."""
    return listwise.wald_table()
