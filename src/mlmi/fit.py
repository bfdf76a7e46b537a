"""Fit one linear mixed model and report it to lme4's definitions (design §5.1).

statsmodels' MixedLM gives a start; the optimum is then found on lme4's own profiled
deviance (``mlmi.deviance``), which is defined on the boundary too, and every reported
number (fixed-effect covariance, conditional modes and variances, criteria, convergence)
comes from lme4's solution there, so that a fit record reads like an ``lmerMod``.
"""
import time
import warnings

import numpy as np
import pandas as pd
import scipy
import statsmodels
import statsmodels.api as sm
from formulaic import model_matrix
from scipy import optimize
from threadpoolctl import threadpool_limits

from mlmi import deviance
from mlmi.formula import MixedFormula, parse_formula

#: lme4's default tolerance on max |gradient| of the deviance (``check.conv.grad``).
GRAD_TOL = 2e-3
#: lme4's ``isSingular`` tolerance on the relative covariance factor's diagonal.
SINGULAR_TOL = 1e-4
#: Where a variance stuck on its bound restarts (in units of sigma: theta = sd / sigma).
BOUNDARY_ESCAPE = 0.1


class Design:
    """Response, fixed and random design matrices and groups of one formula on one data set."""

    def __init__(self, data: pd.DataFrame, formula: MixedFormula):
        missing = [v for v in formula.variables(data.columns) if data[v].isna().any()]
        if missing:
            raise ValueError(f"missing values in model variables {missing}; fit complete data only")
        fixed = model_matrix(formula.fixed, data.astype({c: float for c in _numeric(data)}))
        self.fe_names = ["(Intercept)" if c == "Intercept" else c for c in fixed.columns]
        self.X = np.asarray(fixed, dtype=float)
        self.y = data[formula.response].to_numpy(dtype=float)
        columns = ([np.ones(len(data))] if formula.random_intercept else []) + [
            data[t].to_numpy(dtype=float) for t in formula.random_terms]
        self.Z = np.column_stack(columns)
        self.re_names = formula.re_names
        self.group = formula.group
        self.groups = data[formula.group].to_numpy()
        self.levels = np.unique(self.groups)
        if len(self.levels) < 2:
            raise ValueError(f"grouping column {formula.group!r} has a single level; a mixed model needs several")


def _numeric(data: pd.DataFrame) -> list[str]:
    """Columns of numeric dtype (nullable integers included), to hand formulaic plain floats."""
    return [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c])]


def complete_cases(data: pd.DataFrame, formula: str) -> pd.DataFrame:
    """Rows with no missing value in the model's variables (listwise deletion)."""
    used = parse_formula(formula).variables(data.columns)
    return data.loc[data[used].notna().all(axis=1)].reset_index(drop=True)


def fit_mixed(data: pd.DataFrame, formula: str, reml: bool = True, label: str = "") -> dict:
    """Fit ``formula`` to complete ``data`` and return a self-describing, JSON-ready record.

    statsmodels' MixedLM gives a starting point; lme4's profiled deviance is then minimised
    from it and from lme4's own start, and the best optimum is kept. The record holds fixed
    effects with lme4's standard errors and covariance, variance components, criteria
    (REML criterion, logLik, AIC, BIC, npar), conditional modes with conditional variances,
    and the convergence verdict with every warning (design §5.1).
    """
    design = Design(data, parse_formula(formula))
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        cp = deviance.CrossProducts.of(design.y, design.X, design.Z, _blocks(design))
        attempts = _optimize(design, cp, reml)
        best = _best(attempts)
        theta = np.array(best["theta"])
        record = _describe(design, deviance.solve(theta, cp, reml), theta, reml)
    record["convergence"] = _convergence(theta, best, attempts)
    record.update(label=label, formula=formula, fit_seconds=time.perf_counter() - start,
                  versions={"statsmodels": statsmodels.__version__, "scipy": scipy.__version__})
    return record


def _optimize(design: Design, cp: deviance.CrossProducts, reml: bool) -> list[dict]:
    """Minimise lme4's deviance from several starts; every attempt is recorded.

    Starts: statsmodels' optimum and lme4's own (theta = identity). A variance that ends on
    its bound 0 is a stationary point by symmetry even when the deviance falls away from it,
    so each such element is restarted off the bound. When the best attempt's optimizer did
    not report convergence, or its gradient is not small, a derivative-free Nelder-Mead
    polish follows from there.
    """
    q = design.Z.shape[1]
    starts = [("lme4 default", np.eye(q)[np.tril_indices(q)])]
    statsmodels_theta, statsmodels_warnings = _statsmodels_start(design, reml)
    if statsmodels_theta is not None:
        starts.insert(0, ("statsmodels MixedLM", statsmodels_theta))
    attempts = [_minimize(cp, reml, theta0, start, "L-BFGS-B") for start, theta0 in starts]
    attempts[0]["warnings"] = statsmodels_warnings + attempts[0]["warnings"]
    best = _best(attempts)
    for i in _on_bound(np.array(best["theta"])):
        escape = np.array(best["theta"])
        escape[i] = BOUNDARY_ESCAPE
        attempts.append(_minimize(cp, reml, escape, f"off the bound in theta[{i}]", "L-BFGS-B"))
    best = _best(attempts)
    if not best["converged"] or best["max_abs_gradient"] >= GRAD_TOL:
        attempts.append(_minimize(cp, reml, np.array(best["theta"]), f"{best['optimizer']} optimum", "Nelder-Mead"))
    return attempts


def _best(attempts: list[dict]) -> dict:
    """The attempt with the lowest criterion (the first of equals, so the choice is reproducible)."""
    return min(attempts, key=lambda attempt: attempt["criterion"])


def _on_bound(theta: np.ndarray) -> list[int]:
    """Indices of theta's diagonal elements that sit on their bound 0 (lme4's isSingular test)."""
    bounded = [low is not None for low, _ in deviance.lower_bounds(deviance.q_of(theta))]
    return [i for i, (is_diag, value) in enumerate(zip(bounded, theta)) if is_diag and value < SINGULAR_TOL]


def _statsmodels_start(design: Design, reml: bool):
    """theta of statsmodels' own MixedLM fit, or None (with its warnings) when it fails."""
    model = sm.MixedLM(design.y, design.X, design.groups, exog_re=design.Z)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            result = model.fit(reml=reml, method="bfgs", gtol=1e-8)
            psi = np.asarray(result.cov_re, dtype=float) / result.scale
            theta = relative_factor(psi)[np.tril_indices(psi.shape[0])]
        except (np.linalg.LinAlgError, ValueError) as error:
            warnings.warn(f"statsmodels MixedLM failed: {error}")
            theta = None
    return theta, [f"statsmodels MixedLM: {w.message}" for w in seen]


def _minimize(cp: deviance.CrossProducts, reml: bool, theta0: np.ndarray, start: str, method: str) -> dict:
    """One bounded minimisation of the deviance; returns the attempt's record."""
    objective = lambda theta: deviance.solve(theta, cp, reml).deviance  # noqa: E731
    jac = (lambda theta: deviance.gradient(theta, cp, reml)) if method == "L-BFGS-B" else None
    options = ({"ftol": 1e-13, "gtol": 1e-6, "maxiter": 2000} if method == "L-BFGS-B"
               else {"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = optimize.minimize(objective, theta0, jac=jac, method=method,
                                   bounds=deviance.lower_bounds(deviance.q_of(theta0)), options=options)
    theta = np.asarray(result.x, dtype=float)
    grad = deviance.projected(deviance.gradient(theta, cp, reml), theta)
    return {"start": start, "optimizer": method, "criterion": float(result.fun), "theta": theta.tolist(),
            "max_abs_gradient": float(np.max(np.abs(grad))), "converged": bool(result.success),
            "message": str(result.message), "warnings": [f"{method}: {w.message}" for w in seen]}


def _describe(design: Design, solution: deviance.Solution, theta: np.ndarray, reml: bool) -> dict:
    """Everything design §5.1 lists, from lme4's solution at the optimum."""
    q = design.Z.shape[1]
    lam = deviance.lambda_of(theta, q)
    cov_re = solution.sigma2 * lam @ lam.T
    se = np.sqrt(np.diag(solution.vcov))
    loglik = -solution.deviance / 2
    n_obs = len(design.y)
    npar = len(solution.beta) + deviance.theta_size(q) + 1
    return {
        "reml": reml,
        "n_obs": n_obs,
        "n_groups": {design.group: len(design.levels)},
        "n_levels": 1,
        "fixed_effects": [{"term": t, "estimate": b, "std_error": s, "statistic": b / s}
                          for t, b, s in zip(design.fe_names, solution.beta.tolist(), se.tolist())],
        "vcov": {"terms": design.fe_names, "matrix": solution.vcov.tolist()},
        "random_effects": _variance_components(design, cov_re),
        "sigma": float(np.sqrt(solution.sigma2)),
        "theta": theta.tolist(),
        "reml_criterion": solution.deviance if reml else None,
        "deviance": None if reml else solution.deviance,
        "loglik": loglik,
        "npar": npar,
        "aic": -2 * loglik + 2 * npar,
        "bic": -2 * loglik + np.log(n_obs) * npar,
        "dfcom": n_obs - npar,
        "ranef": {"group": design.group, "levels": [_plain(v) for v in design.levels], "terms": design.re_names,
                  "modes": solution.modes.tolist(), "cond_var": solution.cond_var.tolist()},
    }


def _convergence(theta: np.ndarray, best: dict, attempts: list[dict]) -> dict:
    """The optimizer's verdict, max |gradient|, singular flag and every warning of the kept fit."""
    singular = bool(_on_bound(theta))
    max_grad = best["max_abs_gradient"]
    notes = list(best["warnings"])
    if max_grad >= GRAD_TOL:
        notes.append(f"Model failed to converge with max|grad| = {max_grad:.6g} (tol = {GRAD_TOL})")
    if singular:
        notes.append("boundary (singular) fit: a random-effect variance is at zero or a correlation at +-1")
    return {"converged": best["converged"], "optimizer": f"{best['optimizer']} from {best['start']}",
            "message": best["message"], "max_abs_gradient": max_grad, "singular": singular,
            "warnings": notes, "attempts": attempts}


def _plain(value):
    """A numpy scalar as the plain Python value JSON can hold."""
    return value.item() if hasattr(value, "item") else value


def _variance_components(design: Design, cov_re: np.ndarray) -> dict:
    """SDs, correlations (named ``a.b`` as broom.mixed does) and the covariance matrix."""
    sd = np.sqrt(np.diag(cov_re))
    names = design.re_names
    cor = {f"{names[i]}.{names[j]}": float(cov_re[i, j] / (sd[i] * sd[j])) if sd[i] * sd[j] > 0 else float("nan")
           for i in range(len(names)) for j in range(i + 1, len(names))}
    return {"group": design.group, "terms": names, "sd": dict(zip(names, sd.tolist())), "cor": cor,
            "cov": cov_re.tolist()}


def relative_factor(psi: np.ndarray) -> np.ndarray:
    """lme4's Lambda: lower Cholesky factor of the relative covariance G / sigma^2.

    A semi-definite (singular) psi gets the factor of its eigen-decomposition made
    triangular, so a zero variance shows as a zero on the diagonal.
    """
    try:
        return np.linalg.cholesky(psi)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(psi)
        upper = np.linalg.qr((vectors * np.sqrt(np.clip(values, 0, None))).T, mode="r")
        return upper.T * np.where(np.diag(upper) < 0, -1.0, 1.0)


def _blocks(design: Design) -> list[np.ndarray]:
    """Row indices of each group, in the order of ``design.levels``."""
    order = np.argsort(design.groups, kind="stable")
    bounds = np.searchsorted(design.groups[order], design.levels)
    return np.split(order, bounds[1:])
