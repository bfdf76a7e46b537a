"""Rubin's rules for fixed effects, as ``mice::pool`` computes them (design §5.2).

Estimates are pooled, never the data: each imputed data set is analysed on its own and
only the m estimates and their variances are combined here.
"""
import logging

import numpy as np
import pandas as pd

from mlmi.fit.record import FIXED_COLUMNS, FitRecord

log = logging.getLogger(__name__)

#: Below this relative increase in variance the imputations barely differ (merTools warns too).
NEGLIGIBLE_RIV = 1e-6
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
    from scipy import special  # scipy.stats' functions, without its 1 s import; here: the report needs none of it

    half = np.asarray(special.stdtrit(df, 0.5 + conf_level / 2)) * std_error   # Student t quantile
    statistic = pooled["qbar"] / std_error
    return pd.DataFrame({
        "term": terms, "estimate": pooled["qbar"], "std_error": std_error, "statistic": statistic,
        "df": df, "p_value": 2 * np.asarray(special.stdtr(df, -np.abs(statistic))),
        "conf_low": pooled["qbar"] - half, "conf_high": pooled["qbar"] + half,
        "ubar": pooled["ubar"], "b": pooled["b"], "t": pooled["t"], "dfcom": dfcom,
        "riv": pooled["riv"], "lambda": pooled["lambda"],
        "fmi": (pooled["riv"] + 2 / (df + 3)) / (1 + pooled["riv"]), "m": m,
    }).reset_index(drop=True)[POOLED_COLUMNS]


def exponentiated(pooled: pd.DataFrame) -> pd.DataFrame:
    """Odds or rate ratios: exp of the pooled estimates and of their interval's ends (``term, ratio, conf_low,
    conf_high``), as ``summary(pool(fit), conf.int = TRUE, exponentiate = TRUE)`` in mice and
    ``broom.mixed::tidy(exponentiate = TRUE)`` have them; the interval stays the pooled Student t one."""
    return pd.DataFrame({"term": pooled["term"], "ratio": np.exp(pooled["estimate"]),
                         "conf_low": np.exp(pooled["conf_low"]), "conf_high": np.exp(pooled["conf_high"])})


def ratios(fits: list[FitRecord], labels=None) -> pd.DataFrame:
    """``pooled/ratios.csv``: the pooled fixed effects as odds ratios (binomial, logit) or rate ratios (Poisson,
    log), ``exponentiated``; the header only for any other model, whose exp of a coefficient is no ratio."""
    if fits[0].ratio_kind is None:
        return pd.DataFrame(columns=["term", "ratio", "conf_low", "conf_high"])
    return exponentiated(pool(fits, labels=labels))


def fixed_effects_by_imputation(fits: list[FitRecord], labels=None) -> pd.DataFrame:
    """One row per imputation and term: ``imputation, term, estimate, std_error, statistic``.

    ``labels`` name the imputations (1..m by default), so a table without a left-out fit keeps their numbers.
    """
    labels = range(1, len(fits) + 1) if labels is None else labels
    return pd.concat([fit.fixed_effects.assign(imputation=k) for k, fit in zip(labels, fits)],
                     ignore_index=True)[["imputation", *FIXED_COLUMNS]]


def pool(fits: list[FitRecord], conf_level: float = 0.95, labels=None) -> pd.DataFrame:
    """Rubin-pool the fixed effects of m fit records (``mlmi.fit.record``).

    dfcom is what mice takes for an lmer fit: n_obs - npar of the fits, which must agree. The fits
    must have dropped the same aliased columns (``labels`` name the imputations in that message).
    """
    labels = range(1, len(fits) + 1) if labels is None else labels
    check_same_dropped(dict(zip(map(str, labels), fits)))
    dfcoms = {fit.dfcom for fit in fits}
    if len(dfcoms) > 1:
        raise ValueError(f"the fits disagree on n_obs - npar ({sorted(dfcoms)}); pool fits of one model "
                         "on imputations of one data set")
    pooled = pool_long(fixed_effects_by_imputation(fits), dfcoms.pop(), conf_level)
    for message in negligible_between(pooled):
        log.warning(message)
    return pooled


def check_same_dropped(fits: dict[str, FitRecord]) -> None:
    """Raise ValueError, naming imputations and columns, when the fits dropped different aliased columns.

    lme4 drops a fixed-effect column that is a linear combination of those before it; when that
    holds in some imputations only, their terms differ and no term can be pooled over all m.
    """
    by_dropped = {}
    for label, fit in fits.items():
        by_dropped.setdefault(tuple(fit.dropped), []).append(label)
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
