"""lme4's profiled deviance for one grouping factor, and everything that comes with it.

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


def q_of(theta) -> int:
    """q of a theta vector with q (q + 1) / 2 elements."""
    return int(round((np.sqrt(8 * len(theta) + 1) - 1) / 2))


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
    """lme4's profiled deviance (REML criterion when ``reml``) from its three pieces (Bates et al. 2015, Eq. 34, 41)."""
    dof = _dof(cp, reml)
    return float(log_det_l + dof * (1 + np.log(2 * np.pi * pwrss / dof)) + log_det_rx)


def _dof(cp: CrossProducts, reml: bool) -> int:
    """The divisor of sigma^2's estimate: n - p for REML, n for ML."""
    return cp.n - cp.ztx.shape[2] if reml else cp.n


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


def gradient(theta: np.ndarray, cp: CrossProducts, reml: bool, step: float = 1e-5) -> np.ndarray:
    """Gradient of the deviance in theta by central differences (defined for any sign of theta)."""
    theta = np.asarray(theta, dtype=float)
    steps = np.eye(len(theta)) * step
    return np.array([(criterion(theta + e, cp, reml) - criterion(theta - e, cp, reml)) / (2 * step)
                     for e in steps])


def hessian(theta: np.ndarray, cp: CrossProducts, reml: bool, step: float = 1e-4) -> np.ndarray:
    """Hessian of the deviance in theta by central differences (lme4's ``deriv12`` with its delta 1e-4)."""
    theta = np.asarray(theta, dtype=float)
    steps = np.eye(len(theta)) * step
    value = lambda at: criterion(at, cp, reml)  # noqa: E731
    result = np.empty((len(theta), len(theta)))
    for i, j in zip(*np.triu_indices(len(theta))):
        result[i, j] = result[j, i] = (value(theta + steps[i] + steps[j]) - value(theta + steps[i] - steps[j])
                                       - value(theta - steps[i] + steps[j]) + value(theta - steps[i] - steps[j])
                                       ) / (4 * step**2)
    return result


def projected(grad: np.ndarray, theta: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """The gradient that counts at a bounded optimum: zero where a diagonal element sits on
    its bound 0 and the deviance rises into the feasible region."""
    on_bound = np.array([low is not None for low, _ in lower_bounds(q_of(theta))]) & (np.asarray(theta) <= tol)
    return np.where(on_bound & (grad > 0), 0.0, grad)
