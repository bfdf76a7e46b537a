"""merTools' ``modelFixedEff`` arithmetic, kept only to reproduce published merTools results.

This is NOT Rubin's rules, and its standard errors are too small whenever the imputations
differ (design §5.3). Use ``mlmi.pool.rubin.pool`` for inference; call this only as an explicit
legacy option, to reproduce a table that merTools printed.

merTools' ``modelFixedEff`` (identical in 0.5.2, run here, and 1.0.0, whose source was read)
reads each fit's fixed effects with broom.mixed's ``tidy`` and combines the m fits per term
as follows, where Q_k is fit k's estimate and SE_k its standard error (merTools' own names;
its source calls the mean of the SEs the "within imputation variance")::

    estimate    = mean(Q_k)
    within_var  = mean(SE_k)                        # a mean of SEs, not of variances
    between_var = sum((Q_k - estimate)^2) / m       # divisor m, not m - 1
    std_error   = within_var + (1 + 1/m) between_var  # an SE plus a variance, no square root
    df          = (m - 1) (1 + within_var / ((1 + 1/m) between_var))^2
    statistic   = estimate / std_error

Rubin's rules instead average the variances SE_k^2, use divisor m - 1, and take the square
root of ubar + (1 + 1/m) b. merTools' df is Rubin's (1987) classical df evaluated on its own
within_var and between_var, with no small-sample correction. Rows come out sorted by term in
the C locale (dplyr's ``group_by`` through vctrs), not in the model's order. merTools warns
once when ``((1 + 1/m) between_var)^2 < 1e-9`` for any term; here that warning is logged.
"""
import logging

import numpy as np
import pandas as pd

from mlmi.fit.record import FitRecord
from mlmi.pool.rubin import fixed_effects_by_imputation

log = logging.getLogger(__name__)

#: merTools versions whose ``modelFixedEff`` this module reproduces (the arithmetic is the same).
MERTOOLS_VERSIONS = ("0.5.2", "1.0.0")
#: merTools warns when ((1 + 1/m) between_var)^2 falls below this (strictly).
SMALL_BETWEEN = 1e-9
#: merTools' warning, word for word.
SMALL_BETWEEN_MESSAGE = "Between imputation variance is very small, are imputation sets too similar?"


def mertools_fixed_effects(fits: list[FitRecord]) -> pd.DataFrame:
    """merTools' ``modelFixedEff(modList)`` table from m fit records (NOT Rubin's rules).

    Parameters
    ----------
    fits : list of FitRecord
        The m fit records of one model (``mlmi.fit.record``); only each record's fixed
        effects' estimate and std_error are used.

    Returns
    -------
    pandas.DataFrame
        Columns ``term, estimate, std_error, statistic, df``, one row per term sorted by term
        name in the C locale (code-point order), as merTools returns them.

    Raises
    ------
    ValueError
        With fewer than 2 fits, or when the fits do not all have the same terms.

    Notes
    -----
    With estimates Q_k and standard errors SE_k of one term over k = 1..m, merTools (0.5.2,
    1.0.0) computes estimate = mean(Q_k), within_var = mean(SE_k) (standard errors averaged, not
    variances), between_var = sum((Q_k - estimate)^2) / m (divisor m),
    std_error = within_var + (1 + 1/m) between_var (no square root),
    df = (m - 1) (1 + within_var / ((1 + 1/m) between_var))^2 (Rubin's classical df on
    those two values; infinite when between_var = 0) and statistic = estimate / std_error.
    Rubin's rules give sqrt(mean(SE_k^2) + (1 + 1/m) b) with b's divisor m - 1, which is
    larger whenever the imputations differ: these SEs understate the uncertainty.
    When ((1 + 1/m) between_var)^2 < 1e-9 for any term, merTools' warning is logged on
    the ``mlmi.pool.mertools`` logger.

    References
    ----------
    merTools 0.5.2 and 1.0.0, ``modelFixedEff`` in ``R/merList.R`` (J. Knowles and C. Frederick).
    Rubin, D. B. (1987). Multiple Imputation for Nonresponse in Surveys. Wiley.
    """
    estimates, std_errors = _by_term(fits)
    m = len(estimates)
    estimate = estimates.mean()
    within_var = std_errors.mean()
    inflated_between = (1 + 1 / m) * between_var(estimates)
    std_error = within_var + inflated_between
    _warn_if_small(inflated_between)
    return pd.DataFrame({
        "term": estimate.index,
        "estimate": estimate.to_numpy(),
        "std_error": std_error.to_numpy(),
        "statistic": (estimate / std_error).to_numpy(),
        "df": mertools_df(m, within_var.to_numpy(), inflated_between.to_numpy()),
    })


def _by_term(fits: list[FitRecord]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """m x terms frames of the estimates and of the SEs, terms sorted as merTools sorts them."""
    if len(fits) < 2:
        raise ValueError(f"combining imputations needs at least 2 fits, got m = {len(fits)}")
    long = fixed_effects_by_imputation(fits)
    estimates, std_errors = (long.pivot(index="imputation", columns="term", values=column)
                             for column in ("estimate", "std_error"))
    lacking = sorted(estimates.columns[estimates.isna().any()])
    if lacking:
        raise ValueError(f"the fits do not all have the terms {lacking}; combine fits of one model")
    terms = sorted(estimates.columns)   # Python's code-point order is R's C-locale order
    return estimates[terms], std_errors[terms]


def between_var(estimates: pd.DataFrame) -> pd.Series:
    """merTools' between-imputation variance: mean squared deviation from the mean (divisor m)."""
    return ((estimates - estimates.mean()) ** 2).mean()


def mertools_df(m: int, within_var: np.ndarray, inflated_between: np.ndarray) -> np.ndarray:
    """merTools' df: (m - 1) (1 + within_var / inflated_between)^2.

    inflated_between is (1 + 1/m) between_var: this is Rubin's classical df on merTools'
    values, infinite when between_var = 0 (NaN if within_var is 0 too), as R's division gives.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return (m - 1) * (1 + within_var / inflated_between) ** 2


def _warn_if_small(inflated_between: pd.Series) -> None:
    """Log merTools' warning, once, when ((1 + 1/m) between_var)^2 < 1e-9 for any term."""
    small = inflated_between[inflated_between**2 < SMALL_BETWEEN]
    if len(small):
        log.warning("%s (merTools warns when ((1 + 1/m) between_var)^2 < %g; it holds for terms %s)",
                    SMALL_BETWEEN_MESSAGE, SMALL_BETWEEN, list(small.index))
