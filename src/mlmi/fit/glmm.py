"""Fit one generalized linear mixed model as lme4's ``glmer`` does by default, and report it to lme4's definitions.

Any random terms lme4 takes (``mlmi.fit.random_design``): one term on one grouping column factored group by
group, or several (nested, crossed, an observation-level effect) through ``mlmi.fit.deviance_factors``' blocked
sparse factor, its cross-products reweighted at every PIRLS step; binomial (logit, probit) or Poisson (log)
responses (``mlmi.fit.families``). The stages are lme4's (``R/modular.R``, ``src/external.cpp`` of lme4 1.1-31):

- ``pirls``: penalised iteratively reweighted least squares at a theta: the conditional modes u
  (and, in the first stage, beta jointly) of ``Sum dev.resid(y, mu) + |u|^2`` with
  ``eta = X beta + Z Lambda u``, by Fisher scoring with lme4's step halving and stopping rule;
- ``laplace``: lme4's Laplace deviance there, ``log|L|^2 + |u|^2 + aic`` (``glmResp::Laplace``),
  where ``L L' = Lambda' Z' W Z Lambda + I`` and ``aic`` is the family's -2 log-likelihood; or, for
  nAGQ > 1 with one scalar random effect, lme4's adaptive Gauss-Hermite deviance (``glmerAGQ``);
- ``optimize``: glmer's two stages: theta alone with beta inside PIRLS (nAGQ = 0, ``bobyqa``), then
  theta and beta together on the Laplace (or AGQ) deviance from there, then lme4's
  ``check.boundary``. Both stages run nlopt's BOBYQA: glmer's second optimizer, ``Nelder_Mead``,
  stops short of the optimum by up to its ``FtolAbs`` (1e-5); mlmi goes to the optimum;
- ``describe``: the fixed effects with glmer's ``vcov()`` (twice the inverse of the finite-difference
  Hessian of the deviance in (theta, beta), lme4's ``deriv12``, its beta block), the variance
  components, lme4's deviance, logLik, AIC and BIC, conditional modes and variances, and lme4's
  ``checkConv`` verdict.

lme4's deviance is a function of its PIRLS path, not only of the parameters: PIRLS stops when the
penalised deviance changes by less than ``tolPwrss = 1e-7`` relative, and ``log|L|^2`` is taken from
the factor of the last step, made at the means before that step. On cbpp that lag moves the
deviance by 9e-4, the fixed effects by 4e-4 relative and their SEs by 1.3% from the Laplace
approximation at the exact mode. mlmi follows the path step for step (each evaluation starts from
the linear predictor the stage began with, lme4's ``lp0``), so that its criterion is lme4's: at
lme4's own stage-1 endpoint it agrees to 4e-12. With a non-canonical link (probit) Fisher scoring
converges slowly, the lag makes the criterion noisy at 1e-4, and glmer's Hessian from it can be
wrong (seen on tests/data/binary_slope.csv: SEs of 0.005 where its RX gives 0.08); ``tol_pwrss``
(glmerControl's ``tolPwrss``) tightens the loop, as ``glmerControl(tolPwrss = 1e-12)`` does in R.
"""
import time
from dataclasses import dataclass

import nlopt
import numpy as np
import pandas as pd
import scipy
from threadpoolctl import threadpool_limits

from mlmi.fit import deviance
from mlmi.fit import deviance_factors
from mlmi.fit.families import Family, Response, binomial_response, family_of, response_problem
from mlmi.fit.formula import MixedFormula, parse_formula
from mlmi.fit.lmer import Design, grouping, random_parts, singular_warning
from mlmi.fit.lmer_checks import rank_message

#: PIRLS's tolerance on the relative change of the penalised deviance (glmerControl's ``tolPwrss``) and its
#: most steps (``mkGlmerDevfun``'s ``maxit``).
TOL_PWRSS = 1e-7
PIRLS_MAXIT = 100
#: lme4's step halvings of one PIRLS step (``maxstephalfit``).
MAX_HALVINGS = 20
#: glmerControl's defaults: boundary.tol, check.conv.grad tol, check.conv.hess tol, check.conv.singular tol.
BOUNDARY_TOL = 1e-5
GRAD_TOL = 2e-3
HESS_TOL = 1e-6
SINGULAR_TOL = 1e-4
#: lme4's ``deriv12`` step.
DERIV_STEP = 1e-4
#: nlopt BOBYQA's tolerances in each stage, and its iteration limit.
STAGE1_TOL = 1e-8
STAGE2_TOL = 1e-10
#: Stage 2 restarts BOBYQA once from its optimum with initial steps this much smaller (a polish).
POLISH_STEP = 1e-2
MAXEVAL = 100_000
#: lme4's largest nAGQ.
MAX_AGQ = 25


class GlmmDesign:
    """A GLMM's design: ``mlmi.fit.lmer.Design`` (fixed and random design, groups, lme4's checks) with the family's
    response. With one random term, every row's group is an index into ``levels`` (rows sorted by group, for
    per-group sums); with several, ``terms`` holds the sparse Z of ``mlmi.fit.deviance_factors``."""

    def __init__(self, data: pd.DataFrame, formula: MixedFormula, family: Family, weights: str | None = None):
        if formula.single:
            data = data.iloc[np.argsort(data[formula.group].to_numpy(), kind="stable")].reset_index(drop=True)
        self.base = Design(data, formula, residual=False)
        if weights and data[weights].isna().any():
            raise ValueError(f"missing values in model.weights column {weights!r}; fit complete data only")
        prior = None if weights is None else data[weights].to_numpy(dtype=float)
        failures = self._failures(data, formula)
        problem = response_problem(family.name, formula.response, self.base.y, failures, prior)
        if problem:
            raise ValueError(problem)
        if family.name == "binomial":
            self.response = binomial_response(self.base.y, failures, prior)
        else:
            self.response = Response(self.base.y, np.ones(len(data)) if prior is None else prior, np.ones(len(data)))
        self.family = family
        if self.base.single:
            self.code = self.base.codes
            self.starts = np.flatnonzero(np.r_[True, self.code[1:] != self.code[:-1]])
            self.bounds = deviance.lower_bounds(self.base.Z.shape[1])
        else:
            self.terms = deviance_factors.Terms(self.response.y, self.base.X, self.base.structure, reml=False)
            self.bounds = self.terms.bounds

    @staticmethod
    def _failures(data: pd.DataFrame, formula: MixedFormula) -> np.ndarray | None:
        """``cbind``'s failures column, the signed sum of the columns the formula names; None without cbind."""
        if not formula.failures:
            return None
        return sum(sign * data[column].to_numpy(dtype=float) for sign, column in formula.failures)

    @property
    def lower(self) -> np.ndarray:
        """lme4's lower bounds on theta: 0 for each Lambda's diagonal, -inf elsewhere."""
        return np.array([-np.inf if low is None else low for low, _ in self.bounds])

    @property
    def theta0(self) -> np.ndarray:
        """lme4's start: every term's Lambda the identity."""
        return np.where(self.lower == 0, 1.0, 0.0)

    def random(self, theta: np.ndarray):
        """The random part at ``theta``: per-group blocks for one term, the sparse terms for several."""
        return _OneTerm(self, theta) if self.base.single else _SeveralTerms(self, theta)

    def group_sums(self, values: np.ndarray) -> np.ndarray:
        """Per-group sums of ``values`` over rows (first axis), groups in the order of ``levels`` (one term)."""
        return np.add.reduceat(values, self.starts, axis=0)


class _OneTerm:
    """Z Lambda of one random term at theta (per row, its group's q columns); the modes u are G x q."""

    def __init__(self, design: GlmmDesign, theta: np.ndarray):
        self.design, self.theta = design, theta
        self.lam = deviance.lambda_of(theta, design.base.Z.shape[1])
        self.zl = design.base.Z @ self.lam

    def zeros(self) -> np.ndarray:
        """u = 0."""
        return np.zeros((len(self.design.starts), self.zl.shape[1]))

    def linear(self, u: np.ndarray) -> np.ndarray:
        """Z Lambda u, row by row."""
        return np.einsum("iq,iq->i", self.zl, u[self.design.code])

    def weighted(self, sqrt_w: np.ndarray, working: np.ndarray) -> "_Weighted":
        """The factored weighted least squares of one PIRLS step."""
        return _Weighted(self, sqrt_w, working)


class _SeveralTerms:
    """Z Lambda of several random terms at theta (sparse); the modes u are one vector, term after term."""

    def __init__(self, design: GlmmDesign, theta: np.ndarray):
        self.terms, self.theta = design.terms, theta
        self.zl = (self.terms.Z @ self.terms.lambda_matrix(theta)).tocsr()

    def zeros(self) -> np.ndarray:
        """u = 0."""
        return np.zeros(self.zl.shape[1])

    def linear(self, u: np.ndarray) -> np.ndarray:
        """Z Lambda u."""
        return self.zl @ u

    def weighted(self, sqrt_w: np.ndarray, working: np.ndarray) -> "_WeightedTerms":
        """The factored weighted least squares of one PIRLS step."""
        return _WeightedTerms(self, sqrt_w, working)


@dataclass(frozen=True)
class Mode:
    """Where PIRLS stopped at one theta (and beta): the conditional modes, the means there, and the factored
    weighted least squares of its last step (L L' = Lambda'Z'WZ Lambda + I with W at the means before that
    step, as lme4 keeps it)."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray          # spherical conditional modes: G x q for one term, a vector for several
    eta: np.ndarray
    mu: np.ndarray
    factor: "_Weighted | _WeightedTerms"
    converged: bool

    @property
    def log_det_l2(self) -> float:
        """log |L|^2 (lme4's ``ldL2``)."""
        return self.factor.log_det_l2

    @property
    def rxtrx(self) -> np.ndarray:
        """X'WX - RZX'RZX of the last step (lme4's RX'RX)."""
        return self.factor.rxtrx

    def conditional(self) -> tuple:
        """The conditional modes b = Lambda u and variances Lambda (L L')^-1 Lambda' (sigma = 1), in
        ``mlmi.fit.lmer``'s solution shapes: arrays for one term, lists per term for several."""
        return self.factor.conditional(self.u)


class _Weighted:
    """The weighted pieces of the penalised least squares of one term at theta and the current means: per group
    Lambda'Z'WZ Lambda + I (factored), Lambda'Z'W z and Lambda'Z'WX; X'WX and X'Wz; z the working response."""

    def __init__(self, random: _OneTerm, sqrt_w: np.ndarray, working: np.ndarray):
        design, self.lam = random.design, random.lam
        a = sqrt_w[:, None] * random.zl
        wx = sqrt_w[:, None] * design.base.X
        q = a.shape[1]
        self.chol = np.linalg.cholesky(design.group_sums(a[:, :, None] * a[:, None, :]) + np.eye(q))
        self.cu = np.linalg.solve(self.chol, design.group_sums(a * working[:, None])[..., None])[..., 0]
        self.rzx = np.linalg.solve(self.chol, design.group_sums(a[:, :, None] * wx[:, None, :]))
        rzx_flat = self.rzx.reshape(-1, wx.shape[1])
        self.rxtrx = wx.T @ wx - rzx_flat.T @ rzx_flat
        self.xtz = wx.T @ working

    @property
    def log_det_l2(self) -> float:
        """log |L|^2."""
        return float(2 * np.sum(np.log(np.diagonal(self.chol, axis1=1, axis2=2))))

    def solve(self, joint: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The new u (G x q) and, when ``joint``, beta (lme4's ``merPredD::solve``; ``solveU`` otherwise)."""
        lt = np.swapaxes(self.chol, 1, 2)
        if not joint:
            return np.linalg.solve(lt, self.cu[..., None])[..., 0], None
        beta = np.linalg.solve(self.rxtrx, self.xtz - np.einsum("gqp,gq->p", self.rzx, self.cu))
        return np.linalg.solve(lt, (self.cu - self.rzx @ beta)[..., None])[..., 0], beta

    def conditional(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Modes (G x q) and conditional variances (G x q x q)."""
        inner_inv = np.linalg.inv(self.chol)
        return u @ self.lam.T, self.lam @ (np.swapaxes(inner_inv, 1, 2) @ inner_inv) @ self.lam.T


class _WeightedTerms:
    """The same pieces for several terms: ``mlmi.fit.deviance_factors``' blocked sparse factor of the weighted
    cross-products."""

    def __init__(self, random: _SeveralTerms, sqrt_w: np.ndarray, working: np.ndarray):
        self.terms = random.terms.weighted(sqrt_w, working)
        self.factor = deviance_factors.Factor(self.terms, random.theta)
        self.rxtrx, self.log_det_l2 = self.factor.rxtrx, self.factor.log_det_l

    def solve(self, joint: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The new u and, when ``joint``, beta: L'u = cu - RZX beta, beta from RX'RX."""
        factor = self.factor
        if not joint:
            return factor.back(factor.cu), None
        beta = np.linalg.solve(factor.rxtrx, self.terms.xty - factor.rzx.T @ factor.cu)
        return factor.back(factor.cu - factor.rzx @ beta), beta

    def conditional(self, u: np.ndarray) -> tuple[list, list]:
        """Per term: modes (levels x k) and conditional variances (levels x k x k)."""
        return self.terms.conditional(self.factor, u, 1.0)


def pirls(design: GlmmDesign, theta: np.ndarray, eta: np.ndarray, beta: np.ndarray | None = None,
          tol: float = TOL_PWRSS) -> Mode:
    """PIRLS at ``theta`` from linear predictor ``eta``: u alone for a given ``beta``, or u and beta jointly
    when ``beta`` is None (glmer's first stage, nAGQ = 0), step for step as lme4's ``pwrssUpdate``: each step
    factors L at the current means and solves; it stops when the penalised deviance changes by less than
    ``tol`` relative; a step that raises it is halved up to 20 times. The mode keeps the factor L of the last
    step, made at the means before it, as lme4's does: its ``ldL2`` (and so its deviance) is that one's."""
    family, response = design.family, design.response
    X = design.base.X
    random = design.random(np.asarray(theta, dtype=float))
    joint = beta is None
    offset = np.zeros(len(eta)) if joint else X @ beta
    u = random.zeros()
    b = np.zeros(X.shape[1]) if joint else np.asarray(beta, dtype=float)
    old_pdev, converged = np.inf, False

    def penalised(new_u, new_b):
        new_eta = offset + random.linear(new_u) + (X @ new_b if joint else 0)
        dev = np.sum(family.dev_resid(response.y, family.linkinv(new_eta), response.weights))
        return new_eta, dev + np.sum(new_u**2)

    for _ in range(PIRLS_MAXIT):
        weighted = random.weighted(*_working(design, eta, offset))
        new_u, new_b = weighted.solve(joint)
        new_b = b if new_b is None else new_b
        new_eta, pdev = penalised(new_u, new_b)
        if abs((old_pdev - pdev) / pdev) < tol:
            u, b, eta, converged = new_u, new_b, new_eta, True
            break
        for _ in range(MAX_HALVINGS):
            if np.isfinite(pdev) and pdev <= old_pdev:
                break
            new_u, new_b = (u + new_u) / 2, (b + new_b) / 2
            new_eta, pdev = penalised(new_u, new_b)
        if not np.isfinite(pdev) or pdev - old_pdev > tol:
            break
        u, b, eta, old_pdev = new_u, new_b, new_eta, pdev
    return Mode(np.asarray(theta, dtype=float), b, u, eta, family.linkinv(eta), weighted, converged)


def _working(design: GlmmDesign, eta: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IRLS's square-root weights and weighted working response (offset taken out) at the means of ``eta``."""
    family, response = design.family, design.response
    mu, mu_eta = family.linkinv(eta), family.mu_eta(eta)
    sqrt_w = mu_eta * np.sqrt(response.weights / family.variance(mu))
    return sqrt_w, sqrt_w * (eta - offset + (response.y - mu) / mu_eta)


def laplace(design: GlmmDesign, mode: Mode) -> float:
    """lme4's Laplace deviance at a PIRLS mode: log|L|^2 + |u|^2 + the family's aic (``glmResp::Laplace``)."""
    return mode.log_det_l2 + float(np.sum(mode.u**2)) + design.family.aic(design.response, mode.mu)


def gh_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """lme4's ``GHrule(n)``: Gauss-Hermite knots z and weights w for the standard normal (weights summing to 1)."""
    x, w = np.polynomial.hermite.hermgauss(n)
    return x * np.sqrt(2), w / w.sum()


def agq(design: GlmmDesign, mode: Mode, n_agq: int) -> float:
    """lme4's adaptive Gauss-Hermite deviance (``glmerAGQ``) at a PIRLS mode, one scalar random effect:
    per group, the squared mode plus its deviance residuals, then the quadrature of the integrand's ratio to
    its value at the mode over knots u + z / L; plus log|L|^2. (lme4 sums deviance residuals here, not the
    family's aic as its Laplace deviance does: the two criteria differ by a constant of the data.)"""
    family, response = design.family, design.response
    zl = design.base.Z @ deviance.lambda_of(mode.theta, 1)
    offset = design.base.X @ mode.beta

    def per_group(u: np.ndarray) -> np.ndarray:
        eta = offset + zl[:, 0] * u[design.code]
        return u**2 + design.group_sums(family.dev_resid(response.y, family.linkinv(eta), response.weights))

    u0, sd = mode.u[:, 0], 1 / mode.factor.chol[:, 0, 0]
    at_mode = per_group(u0)
    knots, weights = gh_rule(n_agq)
    total = np.zeros(len(u0))
    for z, w in zip(knots, weights):
        total += w if z == 0 else np.exp(-0.5 * (per_group(u0 + z * sd) - at_mode) + z**2 / 2) * w
    return float(np.sum(at_mode) + mode.log_det_l2 - 2 * np.sum(np.log(total)))


@dataclass
class Objective:
    """glmer's deviance functions: of theta (stage 1, beta in PIRLS) and of (theta, beta) (stage 2, Laplace or
    AGQ). Every call starts PIRLS from ``eta0`` (lme4's ``lp0``), the linear predictor the stage began with."""

    design: GlmmDesign
    n_agq: int
    eta0: np.ndarray
    tol: float = TOL_PWRSS

    @property
    def n_theta(self) -> int:
        """The number of covariance parameters, theta's length."""
        return len(self.design.bounds)

    def stage1(self, theta: np.ndarray) -> float:
        """The nAGQ = 0 deviance at theta: Laplace at the joint mode of u and beta."""
        mode = pirls(self.design, theta, self.eta0, tol=self.tol)
        return laplace(self.design, mode) if mode.converged else np.inf

    def stage2(self, pars: np.ndarray) -> float:
        """The deviance at (theta, beta): Laplace (nAGQ = 1) or adaptive Gauss-Hermite (nAGQ > 1)."""
        mode = self.mode(pars)
        if not mode.converged:
            return np.inf
        return laplace(self.design, mode) if self.n_agq == 1 else agq(self.design, mode, self.n_agq)

    def mode(self, pars: np.ndarray) -> Mode:
        """PIRLS's mode of u at (theta, beta) = ``pars``."""
        return pirls(self.design, pars[:self.n_theta], self.eta0, pars[self.n_theta:], self.tol)


def _bobyqa(objective, start: np.ndarray, lower: np.ndarray, step: np.ndarray, tol: float) -> tuple:
    """nlopt's BOBYQA from ``start`` with initial steps ``step``: (the best point evaluated, its value, nlopt's
    result name)."""
    best = {"fun": np.inf, "x": np.array(start, dtype=float)}

    def counted(x, _grad):
        value = objective(np.array(x))
        if value < best["fun"]:
            best.update(fun=value, x=np.array(x))
        return value if np.isfinite(value) else np.finfo(float).max

    opt = nlopt.opt(nlopt.LN_BOBYQA, len(start))
    opt.set_lower_bounds(lower)
    opt.set_initial_step(step)
    opt.set_min_objective(counted)
    opt.set_xtol_abs(tol)
    opt.set_ftol_abs(tol)
    opt.set_maxeval(MAXEVAL)
    try:
        opt.optimize(np.maximum(np.asarray(start, dtype=float), lower))
        message = {1: "NLOPT_SUCCESS", 3: "NLOPT_FTOL_REACHED", 4: "NLOPT_XTOL_REACHED",
                   5: "NLOPT_MAXEVAL_REACHED"}.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
    except nlopt.RoundoffLimited:
        message = "NLOPT_ROUNDOFF_LIMITED"
    return best["x"], best["fun"], message


def optimize(design: GlmmDesign, n_agq: int = 1, tol: float = TOL_PWRSS) -> tuple[np.ndarray, float, Objective,
                                                                                 list[str]]:
    """glmer's two stages; returns (theta, beta), the deviance there, the stage-2 objective and the optimizers'
    messages. Stage 1 starts at lme4's theta (Lambda = identity) from R's starting means; stage 2 at stage 1's
    theta and beta, its initial steps those of glmer's ``Nelder_Mead`` (0.02 for theta, 0.2 x beta's SE)."""
    theta0 = design.theta0
    start = pirls(design, theta0, design.family.linkfun(design.family.mustart(design.response)), tol=tol)
    first = Objective(design, 0, start.eta, tol)
    lower = design.lower
    theta1, _, message1 = _bobyqa(first.stage1, theta0, lower, np.full(len(theta0), 0.2), STAGE1_TOL)
    stage1 = pirls(design, theta1, first.eta0, tol=tol)
    second = Objective(design, n_agq, stage1.eta, tol)
    beta_se = np.sqrt(np.diag(np.linalg.inv(stage1.rxtrx)))
    step = 0.2 * np.r_[np.full(len(theta1), 0.1), np.minimum(beta_se, 10)]
    bounds = np.r_[lower, np.full(len(stage1.beta), -np.inf)]
    pars, value, message2 = _bobyqa(second.stage2, np.r_[theta1, stage1.beta], bounds, step, STAGE2_TOL)
    pars, value, message2 = _bobyqa(second.stage2, pars, bounds, step * POLISH_STEP, STAGE2_TOL)
    pars, value = _check_boundary(second, pars, value, lower)
    return pars, value, second, [f"stage 1 (theta; nAGQ = 0), BOBYQA: {message1}",
                                 f"stage 2 (theta, beta; nAGQ = {n_agq}), BOBYQA: {message2}"]


def _check_boundary(objective: Objective, pars: np.ndarray, value: float, lower: np.ndarray) -> tuple:
    """lme4's ``check.boundary``: a theta within BOUNDARY_TOL of its bound goes onto it where that lowers the
    deviance."""
    pars = pars.copy()
    for i in np.flatnonzero((pars[:len(lower)] - lower > 0) & (pars[:len(lower)] - lower < BOUNDARY_TOL)):
        trial = pars.copy()
        trial[i] = lower[i]
        if objective.stage2(trial) < value:
            pars = trial
    return pars, objective.stage2(pars)


def deriv12(fun, x: np.ndarray, delta: float = DERIV_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of ``fun`` at ``x`` by central differences, lme4's ``deriv12`` (no bounds, as
    ``optwrap`` calls it)."""
    n = len(x)
    fx = fun(x)
    gradient, hessian = np.empty(n), np.empty((n, n))
    shift = np.eye(n) * delta
    for j in range(n):
        f_add, f_sub = fun(x + shift[j]), fun(x - shift[j])
        hessian[j, j] = (f_add - 2 * fx + f_sub) / delta**2
        gradient[j] = (f_add - f_sub) / (2 * delta)
        for i in range(j):
            hessian[i, j] = hessian[j, i] = (fun(x + shift[i] + shift[j]) - fun(x + shift[i] - shift[j])
                                             - fun(x - shift[i] + shift[j]) + fun(x - shift[i] - shift[j])
                                             ) / (4 * delta**2)
    return gradient, hessian


def fixed_vcov(hessian: np.ndarray, n_theta: int, mode: Mode) -> tuple[np.ndarray, list[str]]:
    """glmer's ``vcov()`` (``vcov.merMod`` with the Hessian available, as by default): the beta block of
    2 H^-1, symmetrised; where that is not positive definite or H is singular, lme4's fallback (RX'RX)^-1 at
    the mode, with lme4's warning."""
    try:
        inverse = np.linalg.inv(hessian)[n_theta:, n_theta:]
        vcov = inverse + inverse.T
        if np.all(np.isfinite(vcov)) and np.min(np.linalg.eigvalsh(vcov)) > 0:
            return vcov, []
    except np.linalg.LinAlgError:
        pass
    return np.linalg.inv(mode.rxtrx), ["variance-covariance matrix computed from finite-difference Hessian is not "
                                       "positive definite or contains NA values: falling back to var-cov "
                                       "estimated from RX"]


def check_convergence(pars: np.ndarray, lower: np.ndarray, gradient: np.ndarray, hessian: np.ndarray) -> dict:
    """lme4's ``checkConv`` with glmerControl's defaults: a theta on its bound is a singular fit (then nothing
    else is checked); else max over parameters of min(|scaled gradient|, |gradient|) against GRAD_TOL, the
    gradient scaled by the inverse Cholesky factor of the Hessian, and the Hessian's eigenvalues."""
    singular = bool(np.any(pars[:len(lower)][lower == 0] < SINGULAR_TOL))
    verdict = {"singular": singular, "max_abs_gradient": None, "messages": []}
    if singular:
        verdict["messages"].append("boundary (singular) fit: see help('isSingular')")
        return verdict
    try:
        scaled = np.linalg.solve(np.linalg.cholesky(hessian).T, gradient)
        max_grad = float(np.max(np.minimum(np.abs(scaled), np.abs(gradient))))
    except np.linalg.LinAlgError:
        max_grad = None
        verdict["messages"].append("unable to evaluate scaled gradient")
    verdict["max_abs_gradient"] = max_grad
    if max_grad is not None and max_grad > GRAD_TOL:
        verdict["messages"].append(f"Model failed to converge with max|grad| = {max_grad:g} (tol = {GRAD_TOL:g})")
    verdict["messages"] += _hessian_messages(hessian)
    return verdict


def _hessian_messages(hessian: np.ndarray) -> list[str]:
    """lme4's ``checkHess`` of the Hessian (tolerance HESS_TOL), in its words."""
    values = np.linalg.eigvalsh(hessian)
    negative = int(np.sum(values < -HESS_TOL))
    if negative:
        return [f"Model failed to converge: degenerate  Hessian with {negative} negative eigenvalues"]
    try:
        np.linalg.cholesky(hessian)
        singular = bool(np.any(np.abs(values) < HESS_TOL))
    except np.linalg.LinAlgError:
        singular = True
    if singular:
        return [" Hessian is numerically singular: parameters are not uniquely determined"]
    messages = []
    if values.max() * HESS_TOL > 1:
        messages.append("Model is nearly unidentifiable: very large eigenvalue - Rescale variables?")
    if values.min() / values.max() < HESS_TOL:
        messages.append("Model is nearly unidentifiable: large eigenvalue ratio - Rescale variables?")
    return messages


def fit_glmm(data: pd.DataFrame, formula: str, family: str = "binomial", link: str | None = None,
             n_agq: int = 1, weights: str | None = None, label: str = "", tol_pwrss: float = TOL_PWRSS) -> dict:
    """Fit ``formula`` to complete ``data`` as ``glmer(formula, family = family(link), nAGQ = n_agq)`` does by
    default, and return a self-describing, JSON-ready record in the shape of ``mlmi.fit.lmer.fit_mixed``'s.

    ``weights`` names a column of prior weights (for a binomial proportion: the number of trials). nAGQ > 1
    needs one scalar random effect, as lme4 requires. ``tol_pwrss`` is glmerControl's ``tolPwrss``: PIRLS's
    tolerance, whose default can leave a probit deviance noisy enough to spoil the Hessian (module docstring).
    The response must fit the family (``mlmi.fit.families``), else ValueError with a one-line message.
    """
    parsed = parse_formula(formula)
    fam = family_of(family, link)
    if not 1 <= n_agq <= MAX_AGQ:
        raise ValueError(f"model.nagq {n_agq}: lme4 takes 1 (Laplace) to {MAX_AGQ} quadrature points")
    design = GlmmDesign(data, parsed, fam, weights)
    if n_agq > 1 and not (design.base.single and design.base.Z.shape[1] == 1):
        raise ValueError(f"model.nagq {n_agq}: nAGQ > 1 is only available for models with a single, scalar "
                         "random-effects term, such as (1 | g)")
    started = time.perf_counter()
    with threadpool_limits(limits=1):  # small matrices: threads cost more than they give, and change rounding
        pars, value, objective, messages = optimize(design, n_agq, tol_pwrss)
        gradient, hessian = deriv12(objective.stage2, pars)
        record, warnings = describe(design, objective, pars, value, hessian)
    record["convergence"] = _convergence(design, objective, pars, gradient, hessian, messages)
    record["convergence"]["warnings"] += warnings
    record.update(label=label, formula=formula, weights=weights, fit_seconds=time.perf_counter() - started,
                  versions={"nlopt": nlopt.__version__, "scipy": scipy.__version__})
    return record


def describe(design: GlmmDesign, objective: Objective, pars: np.ndarray, value: float,
             hessian: np.ndarray) -> tuple[dict, list[str]]:
    """Everything glmer reports, from the mode at the optimum (design §5.1, in glmer's terms), and the warnings
    of its making: vcov's fallback to RX, and a PIRLS that did not converge there."""
    base, n_theta = design.base, objective.n_theta
    theta, beta = pars[:n_theta], pars[n_theta:]
    mode = objective.mode(pars)
    vcov, warnings = fixed_vcov(hessian, n_theta, mode)
    if not mode.converged:
        warnings.append(f"PIRLS did not converge at the optimum in {PIRLS_MAXIT} steps (lme4: pwrssUpdate did not "
                        "converge in (maxit) iterations)")
    se = np.sqrt(np.diag(vcov))
    n_obs = len(base.y)
    npar = len(beta) + n_theta
    loglik = -value / 2
    modes, cond_var = mode.conditional()
    random = random_parts(base, deviance_factors.Solution(value, beta, 1.0, vcov, modes, cond_var), theta)
    return {
        "family": design.family.name, "link": design.family.link, "nagq": objective.n_agq,
        "reml": False, "n_obs": n_obs, **grouping(base),
        "dropped": base.dropped,
        "fixed_effects": [{"term": t, "estimate": b, "std_error": s, "statistic": b / s}
                          for t, b, s in zip(base.fe_names, beta.tolist(), se.tolist())],
        "vcov": {"terms": base.fe_names, "matrix": vcov.tolist()},
        "factors": base.factors,
        "random_effects": random["random_effects"],
        "sigma": 1.0,
        "theta": theta.tolist(),
        "reml_criterion": None,
        "deviance": value,
        "resid_deviance": float(np.sum(design.family.dev_resid(design.response.y, mode.mu, design.response.weights))),
        "loglik": loglik, "npar": npar,
        "aic": -2 * loglik + 2 * npar, "bic": -2 * loglik + np.log(n_obs) * npar,
        "dfcom": n_obs - npar,
        "ranef": random["ranef"],
    }, warnings


def _convergence(design: GlmmDesign, objective: Objective, pars: np.ndarray, gradient: np.ndarray,
                 hessian: np.ndarray, messages: list[str]) -> dict:
    """The verdict in lme4's terms: converged unless ``checkConv`` says the model failed to converge."""
    verdict = check_convergence(pars, design.lower, gradient, hessian)
    failed = [m for m in verdict["messages"] if m.startswith(("Model failed", "unable"))]
    warnings = [rank_message(design.base.dropped)] if design.base.dropped else []
    warnings += [m for m in verdict["messages"] if not m.startswith("boundary")]
    if verdict["singular"]:
        warnings.append(singular_warning(design.base.has_slopes))
    max_grad = verdict["max_abs_gradient"]
    return {"converged": not failed, "optimizer": "BOBYQA (glmer's two stages)",
            "message": "; ".join(failed) if failed else (
                "converged (singular: lme4 checks no gradient)" if verdict["singular"] else
                f"converged: max|grad| = {max_grad:.2g} < {GRAD_TOL} (lme4's check)"),
            "max_abs_gradient": max_grad, "singular": verdict["singular"], "warnings": warnings,
            "gradient": gradient.tolist(), "kept": 1,
            "attempts": [{"start": "lme4 default", "optimizer": "BOBYQA", "criterion": objective.stage2(pars),
                          "theta": pars[:objective.n_theta].tolist(), "max_abs_gradient": max_grad,
                          "converged": not failed, "message": "; ".join(messages), "warnings": [],
                          "outcome": "kept"}]}
