"""lme4's profiled deviance for one random term, and everything that comes with it.

lme4 (Bates et al. 2015, JSS 67(1), section 3) fits by minimising a deviance profiled over
the fixed effects and sigma, as a function of theta alone: the lower-triangular factor
Lambda with Lambda Lambda' = G / sigma^2. Solving the penalised least squares problem at
theta also gives the fixed effects, their covariance, sigma, the conditional modes and
their conditional variances: the same numbers ``lmer`` reports. Unlike statsmodels'
likelihood, it is defined on the boundary (a variance of zero), where singular fits live.
"""
import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CrossProducts:
    """Per-group sufficient statistics of y, X and Z (groups in sorted order)."""

    ztz: np.ndarray   # G x q x q
    ztx: np.ndarray   # G x q x p
    zty: np.ndarray   # G x q
    xtx: np.ndarray   # p x p
    xty: np.ndarray   # p
    yty: float
    n: int

    @classmethod
    def of(cls, y: np.ndarray, X: np.ndarray, Z: np.ndarray, blocks: list[np.ndarray]) -> "CrossProducts":
        """Cross-products of response ``y``, fixed design ``X``, random design ``Z`` per group rows."""
        return cls(ztz=np.array([Z[r].T @ Z[r] for r in blocks]), ztx=np.array([Z[r].T @ X[r] for r in blocks]),
                   zty=np.array([Z[r].T @ y[r] for r in blocks]), xtx=X.T @ X, xty=X.T @ y, yty=float(y @ y),
                   n=len(y))


@dataclass(frozen=True)
class Solution:
    """The penalised least squares solution at one theta."""

    deviance: float      # REML criterion, or -2 logLik for ML
    beta: np.ndarray
    sigma2: float
    vcov: np.ndarray     # lme4's vcov(): sigma^2 (RX'RX)^-1
    modes: np.ndarray    # G x q conditional modes b = Lambda u
    cond_var: np.ndarray  # G x q x q: sigma^2 Lambda (Lambda'Z'Z Lambda + I)^-1 Lambda'


def theta_size(q: int) -> int:
    """Number of free elements of a q x q lower-triangular Lambda."""
    return q * (q + 1) // 2


def lambda_of(theta: np.ndarray, q: int) -> np.ndarray:
    """Lambda from theta (its lower triangle, row by row)."""
    lam = np.zeros((q, q))
    lam[_tril(q)] = theta
    return lam


@functools.cache
def _tril(q: int) -> tuple[np.ndarray, np.ndarray]:
    """np.tril_indices(q), computed once per q (the optimizer asks for Lambda hundreds of times)."""
    return np.tril_indices(q)


def lower_bounds(q: int) -> list:
    """lme4's bounds on theta: diagonal elements >= 0, the others free."""
    rows, cols = np.tril_indices(q)
    return [(0.0, None) if i == j else (None, None) for i, j in zip(rows, cols)]


def criterion(theta: np.ndarray, cp: CrossProducts, reml: bool) -> float:
    """The deviance at ``theta`` alone (``solve(...).deviance``), without beta's covariance, the modes and their
    variances: what an optimizer asks for hundreds of times. The penalised residual sum of squares comes from the
    blocked Cholesky factor of the mixed-model equations (lme4's Eq. 3.19-3.24): pwrss = y'y - |cu|^2 - |cbeta|^2.
    +inf where rounding breaks a factorisation, so that every optimizer steps back from there."""
    try:
        factor = _Factor(theta, cp)
        rx = np.linalg.cholesky(factor.rxtrx)                               # RX' RX = X'X - RZX' RZX
    except np.linalg.LinAlgError:         # rounding at a theta far out (1e5 and more on an uncentred slope)
        return np.inf
    cbeta = _lower_solve(rx, cp.xty - factor.rzx_flat.T @ factor.cu.ravel())
    pwrss = cp.yty - factor.cu.ravel() @ factor.cu.ravel() - cbeta @ cbeta
    log_det_rx = 2 * np.sum(np.log(np.diag(rx))) if reml else 0.0
    return _deviance(factor.log_det_l, pwrss, log_det_rx, cp, reml)


def solve(theta: np.ndarray, cp: CrossProducts, reml: bool) -> Solution:
    """Solve the penalised least squares problem at ``theta`` (lme4's PLS, per group)."""
    factor = _Factor(theta, cp)
    lam, rzx, cu, rxtrx = factor.lam, factor.rzx, factor.cu, factor.rxtrx
    beta = np.linalg.solve(rxtrx, cp.xty - np.einsum("gki,gk->i", rzx, cu))
    linv = np.linalg.inv(factor.chol)
    u = (np.swapaxes(linv, 1, 2) @ (cu - rzx @ beta)[..., None])[..., 0]            # L^-T (cu - RZX beta)
    modes = u @ lam.T
    resid_z = cp.zty - cp.ztx @ beta                                         # Z'(y - X beta) per group
    rss = cp.yty - 2 * beta @ cp.xty + beta @ cp.xtx @ beta
    pwrss = rss - 2 * np.sum(modes * resid_z) + np.einsum("gi,gij,gj->", modes, cp.ztz, modes) + np.sum(u * u)
    deviance = _deviance(factor.log_det_l, pwrss, np.linalg.slogdet(rxtrx)[1] if reml else 0.0, cp, reml)
    sigma2 = pwrss / _dof(cp, reml)
    inner_inv = np.swapaxes(linv, 1, 2) @ linv                 # (Lambda'Z'Z Lambda + I)^-1
    cond_var = sigma2 * (lam @ inner_inv @ lam.T)
    return Solution(float(deviance), beta, float(sigma2), sigma2 * np.linalg.inv(rxtrx), modes, cond_var)


def loglik_at(theta: np.ndarray, beta: np.ndarray, sigma2: float, cp: CrossProducts) -> float:
    """The ML log-likelihood at given parameters, nothing profiled or optimised: y ~ N(X beta, sigma^2 (Z Lambda
    Lambda' Z' + I)) with Lambda from ``theta`` (the random effects' covariance is sigma^2 Lambda Lambda').

    What lme4's ``devfun2`` gives at fixed theta and sigma for a model whose fixed part is an offset X beta
    (mitml's D3 evaluates each imputation's likelihood so). Per group, with M = Lambda' Z'Z Lambda + I and
    w = Lambda' Z'(y - X beta), by the determinant lemma and Woodbury's identity::

        log|V| = n_g log sigma^2 + log|M|,    r' V^-1 r = (r'r - w' M^-1 w) / sigma^2

    so -2 logLik = n log(2 pi sigma^2) + sum_g log|M_g| + (|y - X beta|^2 - sum_g w_g' M_g^-1 w_g) / sigma^2.
    At an ML fit's own estimates it is that fit's logLik.
    """
    q = cp.ztx.shape[1]
    lam = lambda_of(np.asarray(theta, dtype=float), q)
    beta = np.asarray(beta, dtype=float)
    chol = np.linalg.cholesky(lam.T @ cp.ztz @ lam + np.eye(q))
    w = (cp.zty - cp.ztx @ beta) @ lam                                   # G x q: Lambda' Z'(y - X beta)
    solved = _forward(chol, w[..., None])[..., 0]                        # L^-1 w, so |L^-1 w|^2 = w' M^-1 w
    rss = cp.yty - 2 * beta @ cp.xty + beta @ cp.xtx @ beta
    log_det_m = 2 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)))
    return float(-0.5 * (cp.n * np.log(2 * np.pi * sigma2) + log_det_m + (rss - np.sum(solved**2)) / sigma2))


class _Factor:
    """The per-group part of lme4's blocked Cholesky factor at theta: L of Lambda'Z'Z Lambda + I,
    RZX = L^-1 Lambda'Z'X, cu = L^-1 Lambda'Z'y, and X'X - RZX'RZX."""

    def __init__(self, theta: np.ndarray, cp: CrossProducts):
        q, p = cp.ztx.shape[1], cp.ztx.shape[2]
        self.lam = lam = lambda_of(np.asarray(theta, dtype=float), q)
        self.chol = chol = np.linalg.cholesky(lam.T @ cp.ztz @ lam + np.eye(q))
        solved = _forward(chol, np.concatenate([lam.T @ cp.ztx, (cp.zty @ lam)[..., None]], axis=2))
        self.rzx, self.cu = solved[..., :p], solved[..., p]
        self.rzx_flat = self.rzx.reshape(-1, p)
        self.rxtrx = cp.xtx - self.rzx_flat.T @ self.rzx_flat
        self.log_det_l = 2 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)))


def _deviance(log_det_l: float, pwrss: float, log_det_rx: float, cp: CrossProducts, reml: bool) -> float:
    """The profiled deviance of a one-factor model (``profiled`` with its n and p)."""
    return profiled(log_det_l, pwrss, log_det_rx, cp.n, cp.ztx.shape[2], reml)


def profiled(log_det_l: float, pwrss: float, log_det_rx: float, n: int, p: int, reml: bool) -> float:
    """lme4's profiled deviance (REML criterion when ``reml``) from its three pieces (Bates et al. 2015, Eq. 34, 41)."""
    divisor = dof(n, p, reml)
    return float(log_det_l + divisor * (1 + np.log(2 * np.pi * pwrss / divisor)) + log_det_rx)


def _dof(cp: CrossProducts, reml: bool) -> int:
    """The divisor of sigma^2's estimate of a one-factor model."""
    return dof(cp.n, cp.ztx.shape[2], reml)


def dof(n: int, p: int, reml: bool) -> int:
    """The divisor of sigma^2's estimate: n - p for REML, n for ML."""
    return n - p if reml else n


def _forward(lower: np.ndarray, b: np.ndarray) -> np.ndarray:
    """X with lower[g] X[g] = b[g] for every group g at once (forward substitution over the q rows; q is small,
    the groups many, so this beats a general batched solve or inverse several times)."""
    x = np.empty_like(b)
    for i in range(lower.shape[1]):
        x[:, i] = (b[:, i] - np.einsum("gk,gkj->gj", lower[:, i, :i], x[:, :i])) / lower[:, i, i, None]
    return x


def _lower_solve(lower: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with lower x = b for one small lower-triangular matrix (forward substitution)."""
    x = np.empty_like(b)
    for i in range(len(b)):
        x[i] = (b[i] - lower[i, :i] @ x[:i]) / lower[i, i]
    return x


def gradient(deviance, theta: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """Gradient of ``deviance`` (a function of theta) by central differences (defined for any sign of theta)."""
    theta = np.asarray(theta, dtype=float)
    steps = np.eye(len(theta)) * step
    return np.array([(deviance(theta + e) - deviance(theta - e)) / (2 * step) for e in steps])


def hessian(deviance, theta: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Hessian of ``deviance`` (a function of theta) by central differences (lme4's ``deriv12``, delta 1e-4)."""
    theta = np.asarray(theta, dtype=float)
    steps = np.eye(len(theta)) * step
    result = np.empty((len(theta), len(theta)))
    for i, j in zip(*np.triu_indices(len(theta))):
        result[i, j] = result[j, i] = (deviance(theta + steps[i] + steps[j]) - deviance(theta + steps[i] - steps[j])
                                       - deviance(theta - steps[i] + steps[j]) + deviance(theta - steps[i] - steps[j])
                                       ) / (4 * step**2)
    return result


def projected(grad: np.ndarray, theta: np.ndarray, bounds: list, tol: float = 1e-8) -> np.ndarray:
    """The gradient that counts at a bounded optimum: zero where a diagonal element sits on
    its bound 0 and the deviance rises into the feasible region."""
    on_bound = np.array([low is not None for low, _ in bounds]) & (np.asarray(theta) <= tol)
    return np.where(on_bound & (grad > 0), 0.0, grad)


class OneFactor:
    """The deviance of a model of one random term as a function of theta alone, with what an optimizer asks
    of it: its bounds, lme4's start, a start without correlations; ``solve`` for the full solution.
    ``mlmi.deviance_factors.Terms`` answers the same for several terms."""

    def __init__(self, cp: CrossProducts, reml: bool):
        self.cp, self.reml, self.q = cp, reml, cp.ztx.shape[1]
        self.n, self.p = cp.n, cp.ztx.shape[2]

    @property
    def bounds(self) -> list:
        """lme4's bounds on theta."""
        return lower_bounds(self.q)

    @property
    def start(self) -> np.ndarray:
        """lme4's start: Lambda = identity (random effects with the residual's SD, uncorrelated)."""
        return np.eye(self.q)[np.tril_indices(self.q)]

    def uncorrelated(self, theta: np.ndarray) -> np.ndarray:
        """theta with the same random-effect SDs and every correlation zero."""
        lam = lambda_of(theta, self.q)
        return np.diag(np.sqrt(np.sum(lam**2, axis=1)))[np.tril_indices(self.q)]

    def criterion(self, theta: np.ndarray) -> float:
        """The deviance at theta (``criterion``)."""
        return criterion(theta, self.cp, self.reml)

    def solve(self, theta: np.ndarray) -> Solution:
        """The full solution at theta (``solve``)."""
        return solve(theta, self.cp, self.reml)
