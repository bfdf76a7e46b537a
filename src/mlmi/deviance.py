"""lme4's profiled deviance for one grouping factor, and everything that comes with it.

lme4 (Bates et al. 2015, JSS 67(1), section 3) fits by minimising a deviance profiled over
the fixed effects and sigma, as a function of theta alone: the lower-triangular factor
Lambda with Lambda Lambda' = G / sigma^2. Solving the penalised least squares problem at
theta also gives the fixed effects, their covariance, sigma, the conditional modes and
their conditional variances: the same numbers ``lmer`` reports. Unlike statsmodels'
likelihood, it is defined on the boundary (a variance of zero), where singular fits live.
"""
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
    lam[np.tril_indices(q)] = theta
    return lam


def lower_bounds(q: int) -> list:
    """lme4's bounds on theta: diagonal elements >= 0, the others free."""
    rows, cols = np.tril_indices(q)
    return [(0.0, None) if i == j else (None, None) for i, j in zip(rows, cols)]


def solve(theta: np.ndarray, cp: CrossProducts, reml: bool) -> Solution:
    """Solve the penalised least squares problem at ``theta`` (lme4's PLS, per group)."""
    q, p = cp.ztx.shape[1], cp.ztx.shape[2]
    lam = lambda_of(np.asarray(theta, dtype=float), q)
    inner = np.einsum("ji,gjk,kl->gil", lam, cp.ztz, lam) + np.eye(q)       # Lambda'Z'Z Lambda + I
    chol = np.linalg.cholesky(inner)
    rzx = np.linalg.solve(chol, np.einsum("ji,gjk->gik", lam, cp.ztx))     # L^-1 Lambda'Z'X
    cu = np.linalg.solve(chol, (cp.zty @ lam)[..., None])[..., 0]           # L^-1 Lambda'Z'y
    rxtrx = cp.xtx - np.einsum("gki,gkj->ij", rzx, rzx)
    beta = np.linalg.solve(rxtrx, cp.xty - np.einsum("gki,gk->i", rzx, cu))
    u = np.linalg.solve(np.swapaxes(chol, 1, 2), (cu - rzx @ beta)[..., None])[..., 0]
    modes = u @ lam.T
    resid_z = cp.zty - cp.ztx @ beta                                         # Z'(y - X beta) per group
    rss = cp.yty - 2 * beta @ cp.xty + beta @ cp.xtx @ beta
    pwrss = rss - 2 * np.sum(modes * resid_z) + np.einsum("gi,gij,gj->", modes, cp.ztz, modes) + np.sum(u * u)
    log_det_l = 2 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)))
    dof = cp.n - p if reml else cp.n
    deviance = log_det_l + dof * (1 + np.log(2 * np.pi * pwrss / dof))
    if reml:
        deviance += np.linalg.slogdet(rxtrx)[1]
    sigma2 = pwrss / dof
    cond_var = sigma2 * np.einsum("ij,gjk,lk->gil", lam, np.linalg.inv(inner), lam)
    return Solution(float(deviance), beta, float(sigma2), sigma2 * np.linalg.inv(rxtrx), modes, cond_var)


def gradient(theta: np.ndarray, cp: CrossProducts, reml: bool, step: float = 1e-5) -> np.ndarray:
    """Gradient of the deviance in theta by central differences (defined for any sign of theta)."""
    theta = np.asarray(theta, dtype=float)
    steps = np.eye(len(theta)) * step
    return np.array([(solve(theta + e, cp, reml).deviance - solve(theta - e, cp, reml).deviance) / (2 * step)
                     for e in steps])


def projected(grad: np.ndarray, theta: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """The gradient that counts at a bounded optimum: zero where a diagonal element sits on
    its bound 0 and the deviance rises into the feasible region."""
    on_bound = np.array([low is not None for low, _ in lower_bounds(q_of(theta))]) & (np.asarray(theta) <= tol)
    return np.where(on_bound & (grad > 0), 0.0, grad)
