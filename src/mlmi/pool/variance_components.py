"""Pooled variance components with intervals: Rubin's rules on the log-SD and Fisher-z scales, back-transformed.

Each fit record carries its variance parameters on scales where their sampling distribution is near normal
(``variance_parameters``, made by ``mlmi.fit.vc_wald``): log of every random-effect SD and of sigma, atanh of every
correlation, with their Wald covariance from the fit's own information matrix. Here each parameter is pooled on that
scale as ``mlmi.pool.rubin.pool_long`` pools a coefficient (Rubin 1987; Barnard & Rubin 1999), with dfcom infinite: the
complete-data interval of one fit is the normal Wald interval on that scale, so the pooled df is Rubin's
(m - 1) / lambda^2 alone. The estimate and the interval's ends are carried back (exp, tanh): the pooled SD is the
geometric mean of the imputations' SDs, and its interval is not symmetric around it. ``std_error`` is the delta
method's SE on the original scale (exp(qbar) sqrt(t), or (1 - tanh(qbar)^2) sqrt(t)), for reading only: the interval
comes from the transformed scale. A fit on the boundary (a variance at zero, a correlation at +-1) has no Wald
covariance, so a parameter of a pool with such a fit has no interval (NaN).

No R package pools variance components of multiply imputed mixed models this way; merTools reports the SD of the
imputations' estimates as a "std.error" (design §5.3). docs/variance-components.md has the derivation and the
coverage the study of config/studies/variance_components.yaml shows.
"""
import numpy as np
import pandas as pd
from scipy import special  # what scipy.stats calls, without its 1 s import

from mlmi.fit.record import FitRecord, VarianceParameters, scale_of
from mlmi.pool.rubin import pool_long

#: The columns of ``pooled/variance_components.csv``: broom's, and Rubin's quantities on the pooling scale.
VC_COLUMNS = ["group", "term", "estimate", "std_error", "conf_low", "conf_high", "scale", "scaled_estimate",
              "scaled_std_error", "df", "ubar", "b", "t", "riv", "lambda", "fmi", "m"]


def by_imputation(fits: list[FitRecord], labels=None) -> pd.DataFrame:
    """``imputation, group, term, scale, estimate, std_error`` of every fit's variance parameters on their
    pooling scale (``mlmi.fit.vc_wald``); std_error is NaN for a fit on the boundary (its ``vcov`` is None)."""
    labels = range(1, len(fits) + 1) if labels is None else labels
    rows = []
    for label, fit in zip(labels, fits):
        record = fit.variance_parameters or _point_estimates(fit)
        variances = np.full(len(record.terms), np.nan) if record.vcov is None else np.diag(record.vcov)
        for group, term, scale, value, variance in zip(record.groups, record.terms, record.scales, record.estimate,
                                                       variances):
            rows.append({"imputation": label, "group": group, "term": term, "scale": scale, "estimate": value,
                         "std_error": np.sqrt(variance)})
    return pd.DataFrame(rows)


def _point_estimates(fit: FitRecord) -> VarianceParameters:
    """``variance_parameters`` of a record without them (a generalized model's): the estimates on their scales
    from the record's SDs and correlations, with no covariance (no interval)."""
    rows = fit.random_parameters
    names = [row["term"] for row in rows]
    with np.errstate(divide="ignore", invalid="ignore"):          # an SD of 0, a correlation of +-1: infinite
        phi = [float(np.arctanh(row["estimate"]) if scale_of(row["term"]) == "atanh" else np.log(row["estimate"]))
               for row in rows]
    return VarianceParameters([row["group"] for row in rows], names, [scale_of(n) for n in names], phi, None)


def pool_variance_components(fits: list[FitRecord], conf_level: float = 0.95, labels=None) -> pd.DataFrame:
    """``pooled/variance_components.csv``: every random-effect SD, correlation and sigma pooled by Rubin's rules
    on its scale (module docstring), with the estimate and the ``conf_level`` interval carried back. A parameter is
    its grouping factor and name together (two factors both have an ``sd__(Intercept)``)."""
    long = by_imputation(fits, labels)
    long["key"] = pd.factorize(pd.Series(list(zip(long["group"], long["term"]))))[0]   # (group, term) as a number
    keyed = long[["imputation", "key", "estimate", "std_error"]].rename(columns={"key": "term"})
    with np.errstate(all="ignore"):     # a singular fit's infinite log SD or atanh: NaN there, said in the report
        pooled = pool_long(keyed, dfcom=np.inf, conf_level=conf_level)
    first = long.drop_duplicates("key").set_index("key").loc[pooled["term"]]
    scales = first["scale"].to_numpy()
    back = lambda column: _back(scales, pooled[column].to_numpy())  # noqa: E731
    table = pooled.assign(group=first["group"].to_numpy(), term=first["term"].to_numpy(), estimate=back("estimate"),
                          conf_low=back("conf_low"), conf_high=back("conf_high"), scale=scales,
                          scaled_estimate=pooled["estimate"], scaled_std_error=pooled["std_error"],
                          std_error=_slope(scales, pooled["estimate"].to_numpy()) * pooled["std_error"])
    undefined = long.groupby("key", sort=False)["std_error"].apply(lambda se: se.isna().any())[pooled["term"]]
    numbers = [c for c in VC_COLUMNS if c not in ("group", "term", "scale", "estimate", "scaled_estimate", "m")]
    table.loc[undefined.to_numpy(), numbers] = np.nan      # pandas' means would skip the fit on the boundary
    return table[VC_COLUMNS]


def _back(scales: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values on their pooling scale carried back: exp for ``log``, tanh for ``atanh`` (both are evaluated: exp of
    an infinite atanh overflows, unused)."""
    with np.errstate(over="ignore"):
        return np.where(scales == "atanh", np.tanh(values), np.exp(values))


def _slope(scales: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The derivative of ``_back`` at ``values``: the delta method's factor from the pooling scale's SE."""
    with np.errstate(over="ignore"):
        return np.where(scales == "atanh", 1 - np.tanh(values) ** 2, np.exp(values))


def wald_intervals(fit: FitRecord, conf_level: float = 0.95) -> pd.DataFrame:
    """One fit's variance parameters with the normal Wald interval on their scale, carried back: what a single
    (complete-data or listwise) fit gives, in the columns of ``pool_variance_components`` that apply."""
    long = by_imputation([fit])
    scales, phi, se = long["scale"].to_numpy(), long["estimate"].to_numpy(), long["std_error"].to_numpy()
    half = special.ndtri(0.5 + conf_level / 2) * se
    return pd.DataFrame({"group": long["group"], "term": long["term"], "estimate": _back(scales, phi),
                         "std_error": _slope(scales, phi) * se, "conf_low": _back(scales, phi - half),
                         "conf_high": _back(scales, phi + half), "scale": scales, "scaled_estimate": phi,
                         "scaled_std_error": se})
