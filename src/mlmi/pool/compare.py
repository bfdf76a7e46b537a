"""Pooled likelihood-ratio comparisons of the analysis model with a nested one: D2 and D3.

Does the random slope improve the model? Do a factor's levels matter, as a likelihood-ratio test would say? The
comparison model of ``pooling.compare`` (fixed and random terms a subset of ``model.formula``'s) is fitted to every
imputed data set as the analysis model is, and the m pairs of fits are combined into one F test:

- D3 (Meng & Rubin 1992): each imputation's log-likelihood at the pooled estimates of all the parameters of each
  model, as ``mitml::testModels(method = "D3")`` computes it for lmer fits (mitml 0.4-4);
- D2 (Li, Meng, Raghunathan & Rubin 1991): from the m likelihood-ratio chi-squares alone, as
  ``mitml::testModels(method = "D2", use = "likelihood")`` and ``mice::D2(use = "likelihood")`` (mice 3.15).

Two layers, as ``mlmi.pool.hypotheses``: ``d2`` and ``d3`` take the numbers and return the test; ``comparison_tests``
makes the rows of ``pooled/tests.csv`` from a run's fit records and imputed data sets. ``nesting_problem`` is the
start-up check that the comparison model is nested. Estimates are pooled, never the data.

The formula parser (formulaic, ~0.4 s to import) is imported only where a comparison needs it, so that the pool
job of a run without comparisons does not pay for it; D3's likelihoods on the data are the fit's
(``mlmi.fit.lmer.loglik_at_parameters``), handed in by the pool stage: this module fits nothing.
"""
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmi.fit.record import FitRecord
from mlmi.pool.hypotheses import TEST_COLUMNS, d1_df, f_upper

log = logging.getLogger(__name__)

#: The pooled likelihood-ratio tests a comparison can ask for (``pooling.compare``'s ``methods``).
METHODS = ("D2", "D3")
#: mitml takes two log-likelihoods for equal when ``all.equal`` does: relative difference below this.
EQUAL_LOGLIK = 1.5e-8


class ComparisonError(ValueError):
    """A comparison the fits cannot give: a model that is not nested in the analysis model."""


@dataclass(frozen=True)
class LRTResult:
    """One pooled likelihood-ratio test: the statistic on an F(``df1``, ``df2``) reference, its p-value, the
    average relative increase in variance ``riv`` and the number of imputations ``m``."""

    statistic: float
    df1: int
    df2: float
    p_value: float
    riv: float
    m: int


def d2(chi_squares, k: int) -> LRTResult:
    """D2 of Li, Meng, Raghunathan & Rubin (1991) from the m complete-data chi-square statistics ``d_l`` on ``k``
    df, as mitml's ``.D2`` computes it (mitml 0.4-4)::

        dbar = mean(d_l)              r2 = (1 + 1/m) var(sqrt(d_l))          (var with divisor m - 1)
        D2   = (dbar / k - (m + 1)/(m - 1) r2) / (1 + r2)
        v    = k^(-3/m) (m - 1) (1 + 1/r2)^2

    referred to F(k, v). D2 needs nothing but the m statistics, and pays for it: it is the least powerful of
    D1-D3, and its p-value can be off in either direction when the fraction of missing information is large
    (Li et al. 1991; van Buuren 2018, sec. 5.3.4). D2 can come out negative (then p = 1); with r2 = 0, v is
    infinite and D2 = dbar / k on chi-square(k) / k.

    References
    ----------
    Li, K. H., Meng, X. L., Raghunathan, T. E. & Rubin, D. B. (1991). Significance levels from repeated p-values
    with multiply-imputed data. Statistica Sinica 1, 65-92.
    """
    d = np.asarray(chi_squares, dtype=float)
    m = len(d)
    if m < 2:
        raise ValueError(f"a pooled test needs at least 2 imputations, got m = {m}")
    riv = (1 + 1 / m) * np.var(np.sqrt(d), ddof=1)
    statistic = (d.mean() / k - (m + 1) / (m - 1) * riv) / (1 + riv)
    with np.errstate(divide="ignore"):
        df2 = k ** (-3 / m) * (m - 1) * (1 + 1 / np.float64(riv)) ** 2
    return LRTResult(float(statistic), k, float(df2), f_upper(statistic, k, df2), float(riv), m)


def d3(loglik, loglik_pooled, loglik_compare, loglik_compare_pooled, k: int) -> LRTResult:
    """D3 of Meng & Rubin (1992) from each imputation's log-likelihoods, as mitml's ``testModels(method = "D3")``.

    Parameters
    ----------
    loglik, loglik_compare : array_like, shape (m,)
        The analysis model's and the comparison model's ML log-likelihoods at each imputation's own estimates.
    loglik_pooled, loglik_compare_pooled : array_like, shape (m,)
        The same at each model's pooled estimates (every parameter averaged over the imputations).
    k : int
        The number of parameters the comparison model lacks (npar difference).

    Returns
    -------
    LRTResult
        With dbar the mean LR statistic at the imputations' own estimates and dtilde that at the pooled ones::

            dbar   = mean(-2 (loglik_compare - loglik))
            dtilde = mean(-2 (loglik_compare_pooled - loglik_pooled))
            r3     = (m + 1) / (k (m - 1)) (dbar - dtilde)
            D3     = dtilde / (k (1 + r3))

        referred to F(k, v) with Li et al.'s v (``d1_df`` without dfcom). r3 estimates the relative increase
        in variance from dbar - dtilde, which can be negative by chance (mitml keeps it; so does mlmi). D3
        rests on the same assumption as D1 (missing information about equal for every tested direction) and on
        the likelihood being near-quadratic around the pooled estimates.

    References
    ----------
    Meng, X. L. & Rubin, D. B. (1992). Performing likelihood ratio tests with multiply-imputed data sets.
    Biometrika 79, 103-111.
    """
    ll, ll_pooled = np.asarray(loglik, dtype=float), np.asarray(loglik_pooled, dtype=float)
    ll0, ll0_pooled = np.asarray(loglik_compare, dtype=float), np.asarray(loglik_compare_pooled, dtype=float)
    m = len(ll)
    if m < 2:
        raise ValueError(f"a pooled test needs at least 2 imputations, got m = {m}")
    dbar = np.mean(-2 * (ll0 - ll))
    dtilde = np.mean(-2 * (ll0_pooled - ll_pooled))
    riv = (m + 1) / (k * (m - 1)) * (dbar - dtilde)
    statistic = dtilde / (k * (1 + riv))
    df2 = d1_df(k, m, riv)
    return LRTResult(float(statistic), k, df2, f_upper(statistic, k, df2), float(riv), m)


# ---- the models of a comparison -------------------------------------------------------------------------------

def nesting_problem(full, compare) -> str | None:
    """Why the parsed formula ``compare`` is not nested in ``full`` (``mlmi.fit.formula.MixedFormula``), or None: the
    same response and grouping factor, fixed terms a subset of the analysis model's (formulaic's terms, so
    ``a*b`` is ``a + b + a:b``), random terms a subset (a random intercept only where the analysis model has
    one), and not the same model."""
    if compare.response != full.response:
        return f"its response {compare.response!r} is not model.formula's {full.response!r}"
    if compare.group != full.group:
        return f"its grouping factor {compare.group!r} is not model.formula's {full.group!r}"
    fixed, fixed_full = _fixed_terms(compare), _fixed_terms(full)
    extra = [str(term) for term in fixed if term not in fixed_full]
    if extra:
        return f"its fixed terms {extra} are not in model.formula (a nested model keeps a subset of them)"
    random_extra = [name for name in compare.re_names if name not in full.re_names]
    if random_extra:
        return f"its random terms {random_extra} are not in model.formula's (1 + ... | {full.group})"
    if set(fixed) == set(fixed_full) and compare.re_names == full.re_names:
        return "it is model.formula itself; drop fixed or random terms to make the smaller model"
    return None


def reml_problem(method: str, reml: bool, fixed_differ: bool) -> str | None:
    """Why ``method`` cannot compare fits made with ``reml``, or None. D3 evaluates the likelihood at pooled fixed
    effects, which a REML likelihood does not contain: it needs ML fits (mitml refits REML fits with ML for it).
    D2 takes REML likelihoods only when the fixed parts are the same (models differing in random terms alone):
    REML likelihoods of different fixed parts are of different data (residual contrasts) and not comparable."""
    if not reml:
        return None
    if method == "D3":
        other = "" if fixed_differ else ", or ask for methods: [D2] (REML likelihoods of the same fixed terms)"
        return ("D3 evaluates the likelihood at the pooled fixed effects and needs ML fits (mitml refits REML fits "
                f"with ML for it): set model.reml: false{other}")
    if method == "D2" and fixed_differ:
        return ("D2 compares models with different fixed terms, whose REML likelihoods are not comparable: set "
                "model.reml: false (ML fits)")
    return None


def _fixed_terms(formula) -> list:
    """The fixed part's terms of a parsed formula (``mlmi.fit.formula.MixedFormula``), as formulaic expands them
    (parsed, never evaluated)."""
    from formulaic import Formula

    return list(Formula(formula.fixed))


def fixed_terms_differ(full, compare) -> bool:
    """Whether the two models' fixed parts differ (their REML likelihoods are then not comparable)."""
    return set(_fixed_terms(full)) != set(_fixed_terms(compare))


# ---- the pool stage's rows ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PooledParameters:
    """Every parameter of a model averaged over the imputations, as mitml pools them for D3: the fixed effects
    (by term), the random effects' covariance matrix and the residual variance sigma^2."""

    terms: list
    beta: np.ndarray
    cov_re: np.ndarray
    sigma2: float

    @classmethod
    def of(cls, fits: list[FitRecord]) -> "PooledParameters":
        """The means over the fit records ``fits`` (of a model of one random term)."""
        terms = fits[0].terms
        beta = np.mean([[fit.estimates[t] for t in terms] for fit in fits], axis=0)
        cov_re = np.mean([fit.variance_components[0].cov for fit in fits], axis=0)
        return cls(terms, beta, cov_re, float(np.mean([fit.sigma ** 2 for fit in fits])))


def _logliks_at_pooled(fits: list[FitRecord], formula: str, imputations: list, loglik_on) -> list[float]:
    """Each imputed data set's log-likelihood of ``formula`` at the parameters of ``fits`` pooled (D3's
    ``loglik_pooled``); a ComparisonError when a data set's design does not match the fits."""
    pooled = PooledParameters.of(fits)
    try:
        return [loglik_on(data, formula, pooled) for data in imputations]
    except ValueError as error:
        raise ComparisonError(str(error)) from None


def lr_statistics(fits: list[FitRecord], compare_fits: list[FitRecord]) -> np.ndarray:
    """Each imputation's likelihood-ratio chi-square -2 (logLik_compare - logLik), as mitml's D2 takes them: 0
    where the two log-likelihoods are equal to ``all.equal``'s tolerance; a negative one (the larger model's fit
    worse than the nested one's, an optimum not reached) is set to 0 with a warning, where R would give NaN."""
    ll = np.array([fit.loglik for fit in fits])
    ll0 = np.array([fit.loglik for fit in compare_fits])
    d = -2 * (ll0 - ll)
    d[np.abs(ll - ll0) < EQUAL_LOGLIK * np.abs(ll)] = 0.0
    if (d < 0).any():
        log.warning("the comparison model fits imputations %s better than the analysis model that contains it "
                    "(LR chi-squares %s): an optimum was not reached; taken as 0",
                    [fit.label for fit, value in zip(fits, d) if value < 0], d[d < 0].round(6).tolist())
    return np.maximum(d, 0.0)


def comparison_tests(fits: list[FitRecord], comparisons: list[dict], compare_fits: dict, imputations: list | None,
                     formula: str, loglik_on=None) -> pd.DataFrame:
    """Rows of ``pooled/tests.csv`` for ``pooling.compare``: each comparison's methods, in the order asked.

    ``fits`` are the analysis model's records, ``compare_fits`` each comparison's records of the same
    imputations (by name, in the same order), ``imputations`` the imputed data sets in that order (read only
    for D3) and ``formula`` the analysis model's. ``loglik_on(data, formula, parameters)`` is D3's log-likelihood
    of a model on one data set at ``PooledParameters`` (the fit's ``mlmi.fit.lmer.loglik_at_parameters``, which
    the pool stage passes: pooling itself fits nothing). ``dfcom`` is empty: neither test uses it.
    """
    from mlmi.fit.formula import parse_formula

    rows = []
    for comparison in comparisons:
        name, nested = comparison["name"], compare_fits[comparison["name"]]
        npar, nested_npar = fits[0].npar, nested[0].npar
        k = npar - nested_npar
        if k < 1:
            raise ComparisonError(f"pooling.compare {name!r}: the comparison model has {nested_npar} "
                                  f"parameters and model.formula {npar}; a nested model has fewer")
        differ = fixed_terms_differ(parse_formula(formula), parse_formula(comparison["formula"]))
        for method in comparison.get("methods", METHODS):
            problem = reml_problem(method, fits[0].reml, differ)
            if problem:
                raise ComparisonError(f"pooling.compare {name!r}: {problem}")
            if method == "D2":
                result = d2(lr_statistics(fits, nested), k)
            else:
                result = d3([fit.loglik for fit in fits], _logliks_at_pooled(fits, formula, imputations, loglik_on),
                            [fit.loglik for fit in nested],
                            _logliks_at_pooled(nested, comparison["formula"], imputations, loglik_on), k)
            rows.append({"test": name, "hypothesis": comparison["formula"], "statistic": result.statistic,
                         "df": result.df1, "df_residual": result.df2, "p_value": result.p_value, "riv": result.riv,
                         "dfcom": None, "method": method, "m": result.m})
    return pd.DataFrame(rows, columns=TEST_COLUMNS)
