"""Multilevel R²: how much of the outcome's variance a mixed model explains, per fit and pooled over imputations.

Per fit (``fit_r2``, computed by the fit stage with the data at hand and kept in the fit record as ``r2``), the
outcome's model-implied variance is split as Rights & Sterba (2019) split it for a model whose predictors are not
cluster-mean centred::

    var_total = var_fixed + var_random + sigma2
    var_fixed  = var(X beta)                                (the fixed part's sample variance, divisor n - 1)
    var_random = tr(T S),  S = cov(Z) + mean(Z) mean(Z)'    (cov with divisor n - 1; Z with its intercept column)

with T the random effects' covariance matrix and sigma2 the residual variance. From it:

- ``r2_marginal`` = var_fixed / var_total: Nakagawa & Schielzeth's (2013) marginal R², with Johnson's (2014)
  random-slope variance in the denominator; Rights & Sterba's R²_t(f); mitml's ``MVP``.
- ``r2_conditional`` = (var_fixed + var_random) / var_total: Nakagawa & Schielzeth's conditional R² (Johnson's
  extension); Rights & Sterba's R²_t(fvm). Both are ``multilevelR2``'s total variance, exactly.
- ``r2_rb1``, ``r2_rb2``, ``r2_sb``: mitml's proportional reductions against the null model ``y ~ 1 + (1 | g)``
  (refitted with the same REML setting): of the residual variance (Raudenbush & Bryk's level 1), of the random
  intercept's variance (level 2), and of their sum (Snijders & Bosker 1994). RB2 and SB need a random intercept.

The pooled value of each measure is its mean over the imputations (``mlmi.pool.r2.pool_r2``), as
``mitml::multilevelR2`` averages a list of fits (mitml 0.4-4, its default ``print = c("RB1", "RB2", "SB", "MVP")``):
a point summary without an interval, since R² has no standard error of its own in these fits.

References
----------
Nakagawa, S. & Schielzeth, H. (2013). A general and simple method for obtaining R² from generalized linear
mixed-effects models. Methods in Ecology and Evolution 4, 133-142.
Johnson, P. C. D. (2014). Extension of Nakagawa & Schielzeth's R²_GLMM to random slopes models. Methods in
Ecology and Evolution 5, 944-946.
Rights, J. D. & Sterba, S. K. (2019). Quantifying explained variance in multilevel models: an integrative
framework for defining R-squared measures. Psychological Methods 24, 309-338.
Snijders, T. A. B. & Bosker, R. J. (1994). Modeled variance in two-level models. Sociological Methods & Research
22, 342-363.
"""
import logging

import numpy as np
import pandas as pd

from mlmi.fit.record import FitRecord

log = logging.getLogger(__name__)

#: The measures, in the order of ``pooled/r2.csv``'s columns.
MEASURES = ("r2_marginal", "r2_conditional", "r2_rb1", "r2_rb2", "r2_sb")


def variance_parts(X: np.ndarray, beta: np.ndarray, Zs: list[np.ndarray], covs: list[np.ndarray],
                   sigma2: float) -> dict:
    """The model-implied variance of the outcome in its three parts (module docstring): fixed, random (summed over
    the random terms, each with its own columns ``Zs`` and covariance ``covs``), residual."""
    var_fixed = float(np.var(X @ beta, ddof=1))
    var_random = 0.0
    for Z, cov_re in zip(Zs, covs):
        moments = np.atleast_2d(np.cov(Z, rowvar=False, ddof=1)) + np.outer(Z.mean(axis=0), Z.mean(axis=0))
        var_random += float(np.trace(cov_re @ moments))
    return {"var_fixed": var_fixed, "var_random": var_random, "sigma2": float(sigma2)}


def measures(parts: dict, null: dict | None, random_intercept: bool) -> dict:
    """The five measures of the module docstring from ``variance_parts`` and the null model's ``sigma2`` and
    ``tau00`` (its random intercept's variance); ``tau00`` is the model's own random intercept variance in
    ``parts``. RB2 and SB are NaN without a random intercept, whose variance they compare; RB1, RB2 and SB are NaN
    without a null model (``None``: a model of several random terms)."""
    total = parts["var_fixed"] + parts["var_random"] + parts["sigma2"]
    marginal = {"r2_marginal": parts["var_fixed"] / total,
                "r2_conditional": (parts["var_fixed"] + parts["var_random"]) / total}
    if null is None:
        return {**marginal, "r2_rb1": np.nan, "r2_rb2": np.nan, "r2_sb": np.nan}
    tau00 = parts["tau00"] if random_intercept else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return {**marginal, "r2_rb1": 1 - parts["sigma2"] / null["sigma2"],
                "r2_rb2": float(1 - np.float64(tau00) / null["tau00"]),
                "r2_sb": float(1 - (parts["sigma2"] + tau00) / np.float64(null["sigma2"] + null["tau00"]))}


def fit_r2(data: pd.DataFrame, record: FitRecord, design=None) -> dict:
    """The ``r2`` entry of a fit record: the variance parts, the null model's, and the measures.

    ``record`` is the fit record of ``mlmi.fit.lmer.fit_mixed``'s fit of ``data``; the null model ``y ~ 1 + (1 | g)`` is
    fitted here to the same rows with the record's REML setting, as ``multilevelR2`` refits it
    (``update(model, y ~ 1 + (1|g))``). ``design`` is the fit's ``mlmi.fit.lmer.Design`` when the caller has it (the fit
    stage), so that it is not built again.
    A model of several random terms has its marginal and conditional R² (every term's variance counted) and no
    null model: RB1, RB2 and SB are defined against one grouping factor (``multilevelR2`` takes one).
    """
    from mlmi.fit.formula import lme4_name, parse_formula
    from mlmi.fit.lmer import Design, fit_mixed

    formula = parse_formula(record.formula)
    design = design if design is not None else Design(data, formula)
    beta = np.array(list(record.estimates.values()))
    covs = [term.cov for term in record.variance_components]
    parts = variance_parts(design.X, beta, [block.Z for block in design.structure.blocks], covs, record.sigma ** 2)
    if not design.single:
        return {**parts, "null": None, **measures(parts, None, False)}
    parts["tau00"] = float(covs[0][0, 0])
    null_formula = f"{lme4_name(formula.response)} ~ 1 + (1 | {lme4_name(formula.group)})"
    null_fit = FitRecord.from_fit(fit_mixed(data, null_formula, reml=record.reml, label=f"{record.label} null"))
    null = {"formula": null_formula, "sigma2": null_fit.sigma ** 2,
            "tau00": float(null_fit.variance_components[0].cov[0, 0]), "converged": null_fit.converged}
    return {**parts, "null": null, **measures(parts, null, formula.random_intercept)}
