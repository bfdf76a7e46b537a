"""What a fit record (``fits/*.json``, written by ``mlmi.fit.fit_mixed``) says, read without fitting anything.

The fit stage writes records; the pool stage, the report, the console and a study read them. What
they read lives here, so none of them imports ``mlmi.fit`` (and with it statsmodels).
"""
import numpy as np
import pandas as pd
from scipy import special  # what scipy.stats calls, without its 1 s import

#: lme4's default tolerance on max |gradient| of the deviance (``check.conv.grad``).
GRAD_TOL = 2e-3


def failure(convergence: dict) -> str:
    """Why a fit did not converge, in one line: its attempts, the kept optimizer's own message and max|grad|."""
    kept = convergence["attempts"][convergence["kept"] - 1]
    return (f"no attempt of {len(convergence['attempts'])} converged; the best, {convergence['optimizer']}, "
            f"ended with {kept['message']!r} at max|grad| = {convergence['max_abs_gradient']:.3g} "
            f"(tol = {GRAD_TOL})")


def ratio_kind(fit: dict) -> str | None:
    """What exp of a fixed effect is for the fit's family and link: odds ratios (binomial, logit), rate ratios
    (Poisson, log), or None (a linear model's, or a probit's, coefficients are not ratios on the exp scale)."""
    return {("binomial", "logit"): "odds ratio", ("poisson", "log"): "rate ratio"}.get(
        (fit.get("family", "gaussian"), fit.get("link")))


def link_scale(fit: dict) -> str | None:
    """The scale a GLMM's coefficients are on, for axis labels: log odds, probit or log rate; None for a linear
    mixed model (its response's own units)."""
    return {"logit": "log odds", "probit": "probit", "log": "log rate"}.get(fit.get("link")) \
        if fit.get("family", "gaussian") != "gaussian" else None


def model_kind(fit: dict) -> str:
    """The model in a phrase: ``linear mixed model``, or ``generalized linear mixed model (binomial family, logit
    link)``."""
    if fit.get("family", "gaussian") == "gaussian":
        return "linear mixed model"
    return f"generalized linear mixed model ({fit['family']} family, {fit['link']} link)"


def estimation(fit: dict) -> str:
    """How the fit estimates: REML, maximum likelihood, or for a GLMM maximum likelihood with glmer's
    approximation of the integral (Laplace, or adaptive Gauss-Hermite quadrature with its nAGQ)."""
    if fit.get("family", "gaussian") == "gaussian":
        return "REML" if fit["reml"] else "maximum likelihood"
    return ("maximum likelihood (Laplace approximation)" if fit["nagq"] == 1 else
            f"maximum likelihood (adaptive Gauss-Hermite quadrature, nAGQ = {fit['nagq']})")


def wald_table(fit: dict, conf_level: float = 0.95) -> pd.DataFrame:
    """One fit's fixed effects in broom's columns with Wald (normal) intervals, as lme4's confint."""
    table = pd.DataFrame(fit["fixed_effects"])
    half = special.ndtri(0.5 + conf_level / 2) * table["std_error"]
    return table.assign(p_value=2 * special.ndtr(-np.abs(table["statistic"])),
                        conf_low=table["estimate"] - half, conf_high=table["estimate"] + half)


def per_term(part) -> list[dict]:
    """A record's ``random_effects`` or ``ranef`` as a list with one mapping per random term: a model of one
    term holds the mapping itself (the record shape of one grouping factor), a model of several a list."""
    return part if isinstance(part, list) else [part]
