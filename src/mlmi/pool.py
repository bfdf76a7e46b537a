"""Rubin's rules for fixed effects, as ``mice::pool`` computes them (design §5.2).

Estimates are pooled, never the data: each imputed data set is analysed on its own and
only the m estimates and their variances are combined here.
"""
import logging

import numpy as np
import pandas as pd
from scipy import stats

from mlmi.fit import failure

log = logging.getLogger(__name__)

#: Below this relative increase in variance the imputations barely differ (merTools warns too).
NEGLIGIBLE_RIV = 1e-6
#: What pooling does when a fit did not converge (``pooling.on_failed_fit``): stop, or pool the others.
ON_FAILED_FIT = ("stop", "warn")
#: What to do about fits that did not converge, the end of every message about them.
CHECK_MODEL = "check the model (centre or rescale its predictors, simplify its random part)"
POOLED_COLUMNS = ["term", "estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high",
                  "ubar", "b", "t", "dfcom", "riv", "lambda", "fmi", "m"]


def barnard_rubin_df(m: int, b, t, dfcom):
    """Degrees of freedom of a pooled estimate (Barnard & Rubin 1999).

    Parameters
    ----------
    m : int
        Number of imputations.
    b, t : array_like
        Between-imputation and total variance per term.
    dfcom : float
        Complete-data degrees of freedom; ``numpy.inf`` for a large sample.

    Returns
    -------
    numpy.ndarray
        ``dfold * dfobs / (dfold + dfobs)`` with ``dfold = (m - 1) / lambda^2`` and
        ``dfobs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda)``. With b = 0 (lambda = 0)
        dfold is infinite and df = dfobs; with dfcom infinite, df = dfold.
    """
    lambda_ = (1 + 1 / m) * np.asarray(b, dtype=float) / np.asarray(t, dtype=float)
    if np.isinf(dfcom):
        with np.errstate(divide="ignore"):
            return (m - 1) / lambda_**2
    dfobs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda_)
    return dfobs / (1 + dfobs * lambda_**2 / (m - 1))        # = dfold dfobs / (dfold + dfobs), finite at b = 0


def rubin(estimates: pd.DataFrame, variances: pd.DataFrame) -> pd.DataFrame:
    """Rubin's (1987) quantities per column of two m x terms frames of Q_k and U_k.

    Returns qbar, ubar, b, t, riv and lambda per term: qbar and ubar are means over the
    m rows, b = sum((Q_k - qbar)^2) / (m - 1), t = ubar + (1 + 1/m) b,
    riv = (1 + 1/m) b / ubar and lambda = (1 + 1/m) b / t.
    """
    m = len(estimates)
    if m < 2:
        raise ValueError(f"pooling needs at least 2 imputations, got m = {m}")
    qbar, ubar = estimates.mean(), variances.mean()
    b = ((estimates - qbar) ** 2).sum() / (m - 1)
    t = ubar + (1 + 1 / m) * b
    return pd.DataFrame({"qbar": qbar, "ubar": ubar, "b": b, "t": t,
                         "riv": (1 + 1 / m) * b / ubar, "lambda": (1 + 1 / m) * b / t})


def pool_long(table: pd.DataFrame, dfcom: float, conf_level: float = 0.95) -> pd.DataFrame:
    """Pool a long table of ``imputation, term, estimate, std_error`` into design §4's columns.

    df follows Barnard & Rubin (1999), fmi = (riv + 2 / (df + 3)) / (1 + riv) as in mice;
    p-values and intervals come from Student's t with df. Term order is kept.
    """
    lacking = [c for c in ("imputation", "term", "estimate", "std_error") if c not in table.columns]
    if lacking:
        raise ValueError(f"cannot pool: the table lacks columns {lacking}")
    terms = list(dict.fromkeys(table["term"]))
    estimates = table.pivot(index="imputation", columns="term", values="estimate")[terms]
    variances = table.pivot(index="imputation", columns="term", values="std_error")[terms] ** 2
    m = len(estimates)
    pooled = rubin(estimates, variances)
    df = barnard_rubin_df(m, pooled["b"], pooled["t"], dfcom)
    std_error = np.sqrt(pooled["t"])
    half = stats.t.ppf(0.5 + conf_level / 2, df) * std_error
    statistic = pooled["qbar"] / std_error
    return pd.DataFrame({
        "term": terms, "estimate": pooled["qbar"], "std_error": std_error, "statistic": statistic,
        "df": df, "p_value": 2 * stats.t.sf(np.abs(statistic), df),
        "conf_low": pooled["qbar"] - half, "conf_high": pooled["qbar"] + half,
        "ubar": pooled["ubar"], "b": pooled["b"], "t": pooled["t"], "dfcom": dfcom,
        "riv": pooled["riv"], "lambda": pooled["lambda"],
        "fmi": (pooled["riv"] + 2 / (df + 3)) / (1 + pooled["riv"]), "m": m,
    }).reset_index(drop=True)[POOLED_COLUMNS]


def fixed_effects_by_imputation(fits: list[dict], labels=None) -> pd.DataFrame:
    """One row per imputation and term: ``imputation, term, estimate, std_error, statistic``.

    ``labels`` name the imputations (1..m by default), so a table without a left-out fit keeps their numbers.
    """
    labels = range(1, len(fits) + 1) if labels is None else labels
    return pd.DataFrame([{"imputation": k, **row} for k, fit in zip(labels, fits) for row in fit["fixed_effects"]])


def pool(fits: list[dict], conf_level: float = 0.95, labels=None) -> pd.DataFrame:
    """Rubin-pool the fixed effects of m fit records (from ``mlmi.fit.fit_mixed``).

    dfcom is what mice takes for an lmer fit: n_obs - npar of the fits, which must agree. The fits
    must have dropped the same aliased columns (``labels`` name the imputations in that message).
    """
    labels = range(1, len(fits) + 1) if labels is None else labels
    check_same_dropped(dict(zip(map(str, labels), fits)))
    dfcoms = {fit["dfcom"] for fit in fits}
    if len(dfcoms) > 1:
        raise ValueError(f"the fits disagree on n_obs - npar ({sorted(dfcoms)}); pool fits of one model "
                         "on imputations of one data set")
    pooled = pool_long(fixed_effects_by_imputation(fits), dfcoms.pop(), conf_level)
    for message in negligible_between(pooled):
        log.warning(message)
    return pooled


def check_same_dropped(fits: dict[str, dict]) -> None:
    """Raise ValueError, naming imputations and columns, when the fits dropped different aliased columns.

    lme4 drops a fixed-effect column that is a linear combination of those before it; when that
    holds in some imputations only, their terms differ and no term can be pooled over all m. A record
    without ``dropped`` (written before fits recorded it) dropped none.
    """
    by_dropped = {}
    for label, fit in fits.items():
        by_dropped.setdefault(tuple(fit.get("dropped", [])), []).append(label)
    if len(by_dropped) > 1:
        said = "; ".join(f"imputation{'s' if len(labels) > 1 else ''} {', '.join(labels)}: "
                         f"{', '.join(map(repr, dropped)) if dropped else 'none'}"
                         for dropped, labels in by_dropped.items())
        raise ValueError(f"the fits dropped different aliased fixed-effect columns ({said}), so their terms differ "
                         "and cannot be pooled; remove those columns from model.formula")


def negligible_between(pooled: pd.DataFrame) -> list[str]:
    """Warnings for terms whose imputations barely differ (riv below NEGLIGIBLE_RIV)."""
    return [f"term {term!r}: between-imputation variance is negligible next to the within variance "
            f"(riv = {riv:.3g} < {NEGLIGIBLE_RIV:g}); are the imputations too similar?"
            for term, riv in zip(pooled["term"], pooled["riv"]) if riv < NEGLIGIBLE_RIV]


def wald_table(fit: dict, conf_level: float = 0.95) -> pd.DataFrame:
    """One fit's fixed effects in broom's columns with Wald (normal) intervals, as lme4's confint."""
    table = pd.DataFrame(fit["fixed_effects"])
    half = stats.norm.ppf(0.5 + conf_level / 2) * table["std_error"]
    return table.assign(p_value=2 * stats.norm.sf(np.abs(table["statistic"])),
                        conf_low=table["estimate"] - half, conf_high=table["estimate"] + half)


class FailedFitError(ValueError):
    """Fits that did not converge, where ``pooling.on_failed_fit`` does not let pooling go on without them."""


def converged_fits(fits: dict[str, dict], paths: dict[str, str], on_failed_fit: str) -> dict[str, dict]:
    """The fits to pool, by imputation label, under ``on_failed_fit`` (one of ON_FAILED_FIT).

    Every fit when all converged. Otherwise ``stop`` raises a FailedFitError naming each
    failed imputation, its file and the optimizer's message; ``warn`` keeps the fits that
    converged, and raises the same error when fewer than 2 did (pooling needs m >= 2).
    """
    if on_failed_fit not in ON_FAILED_FIT:
        raise ValueError(f"on_failed_fit is {on_failed_fit!r}; use one of {ON_FAILED_FIT}")
    failed = [k for k, fit in fits.items() if not fit["convergence"]["converged"]]
    if not failed:
        return fits
    named = "; ".join(f"imputation {k} ({paths[k]}): {failure(fits[k]['convergence'])}" for k in failed)
    kept = {k: fit for k, fit in fits.items() if k not in failed}
    if on_failed_fit == "stop":
        raise FailedFitError(f"{len(failed)} of {len(fits)} fits did not converge and pooling.on_failed_fit is stop: "
                             f"{named}; {CHECK_MODEL}, or set pooling.on_failed_fit: warn to pool the fits that "
                             "converged")
    if len(kept) < 2:
        raise FailedFitError(f"only {len(kept)} of {len(fits)} fits converged, and pooling needs at least 2: {named}; "
                             f"{CHECK_MODEL}")
    return kept


def left_out(model_info: pd.DataFrame) -> list[str]:
    """Imputations that model_info's ``pooled`` column marks as left out of the pool (none without the column)."""
    if "pooled" not in model_info:
        return []
    imputed = model_info[model_info["imputation"].astype(str) != "listwise"]
    return [str(k) for k, pooled in zip(imputed["imputation"], imputed["pooled"]) if not pooled]


def left_out_warnings(model_info: pd.DataFrame) -> list[str]:
    """One warning per imputation left out of the pool, saying how many were pooled."""
    excluded = left_out(model_info)
    total = int((model_info["imputation"].astype(str) != "listwise").sum())
    return [f"imputation {k} was left out of the pooled results: its fit did not converge "
            f"(pooling.on_failed_fit: warn); {total - len(excluded)} of {total} imputations pooled" for k in excluded]
