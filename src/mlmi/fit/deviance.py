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
        """Cross-products of response ``y``, fixed design ``X``, random design ``Z`` per group rows (``blocks``: each
        group's row indices). The rows are put in group order once, each group's then a slice; Z'Z of a group is the
        product of two arrays (a copy), as numpy computes it for two (one array times itself goes another way)."""
        ends = np.cumsum([len(rows) for rows in blocks])
        spans = list(zip(ends - [len(rows) for rows in blocks], ends))
        order = np.concatenate(blocks)
        ys, Xs, Zs = y[order], X[order], Z[order]
        return cls(ztz=np.array([Zs[a:b].T @ Zs[a:b].copy() for a, b in spans]),
                   ztx=np.array([Zs[a:b].T @ Xs[a:b] for a, b in spans]),
                   zty=np.array([Zs[a:b].T @ ys[a:b] for a, b in spans]), xtx=X.T @ X, xty=X.T @ y, yty=float(y @ y),
                   n=len(y))

    @functools.cached_property
    def ztz_rows(self) -> np.ndarray:
        """Z'Z of every group side by side, q x (G q): Lambda' times it is one matrix product for all groups."""
        return _side_by_side(self.ztz)

    @functools.cached_property
    def ztw_rows(self) -> np.ndarray:
        """[Z'X, Z'y] of every group side by side, q x (G (p + 1)), likewise."""
        return _side_by_side(np.concatenate([self.ztx, self.zty[..., None]], axis=2))


def _side_by_side(blocks: np.ndarray) -> np.ndarray:
    """G blocks of q x c as one q x (G c) matrix, block g in columns g c to (g + 1) c."""
    return np.ascontiguousarray(blocks.transpose(1, 0, 2).reshape(blocks.shape[1], -1))


def _by_group(rows: np.ndarray, groups: int) -> np.ndarray:
    """m x q x (G c) products of Lambda' with ``_side_by_side`` blocks back as m x G x q x c (a copy)."""
    m, q = rows.shape[:2]
    return rows.reshape(m, q, groups, -1).transpose(0, 2, 1, 3).copy()


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


def lambdas(theta: np.ndarray, ks: list[int]) -> list[np.ndarray]:
    """Each random term's k x k Lambda from theta (terms of ``ks`` effects): each term's lower triangle, row by row,
    term after term."""
    sizes = np.cumsum([0] + [theta_size(k) for k in ks])
    return [lambda_of(np.asarray(theta[a:b], dtype=float), k) for a, b, k in zip(sizes, sizes[1:], ks)]


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
    variances: what an optimizer asks for hundreds of times (``criteria`` at one point)."""
    return float(criteria(np.asarray(theta, dtype=float)[None, :], cp, reml)[0])


def criteria(thetas: np.ndarray, cp: CrossProducts, reml: bool) -> np.ndarray:
    """The deviance at each row of ``thetas`` (m x len(theta)), all at once: the points of a finite-difference
    gradient or Hessian cost little more than one. Each value is the same number, to the last bit, as that point's
    alone. The penalised residual sum of squares comes from the blocked Cholesky factor of the mixed-model
    equations (lme4's Eq. 3.19-3.24): pwrss = y'y - |cu|^2 - |cbeta|^2. +inf where rounding breaks a
    factorisation, so that every optimizer steps back from there."""
    thetas = np.asarray(thetas, dtype=float)
    try:
        factor = _Factor(thetas, cp)
        rx = np.linalg.cholesky(factor.rxtrx)                               # RX' RX = X'X - RZX' RZX
    except np.linalg.LinAlgError:         # rounding at a theta far out (1e5 and more on an uncentred slope)
        if len(thetas) == 1:
            return np.array([np.inf])
        return np.concatenate([criteria(theta[None, :], cp, reml) for theta in thetas])
    cu = np.ascontiguousarray(factor.cu.reshape(len(thetas), -1))        # as ravel() is: the same dot products
    cbeta = _lower_solve(rx, cp.xty - (np.swapaxes(factor.rzx_flat, 1, 2) @ cu[..., None])[..., 0])
    pwrss = cp.yty - np.vecdot(cu, cu) - np.vecdot(cbeta, cbeta)
    log_det_rx = 2 * np.sum(np.log(np.diagonal(rx, axis1=1, axis2=2)), axis=1) if reml else 0.0
    return _profiled(factor.log_det_l, pwrss, log_det_rx, cp.n, cp.ztx.shape[2], reml)


def solve(theta: np.ndarray, cp: CrossProducts, reml: bool) -> Solution:
    """Solve the penalised least squares problem at ``theta`` (lme4's PLS, per group)."""
    factor = _Factor(np.asarray(theta, dtype=float)[None, :], cp)
    lam, rzx, cu, rxtrx, chol = factor.lam[0], factor.rzx[0], factor.cu[0], factor.rxtrx[0], factor.chol[0]
    beta = np.linalg.solve(rxtrx, cp.xty - np.einsum("gki,gk->i", rzx, cu))
    linv = np.linalg.inv(chol)
    u = (np.swapaxes(linv, 1, 2) @ (cu - rzx @ beta)[..., None])[..., 0]            # L^-T (cu - RZX beta)
    modes = u @ lam.T
    resid_z = cp.zty - cp.ztx @ beta                                         # Z'(y - X beta) per group
    rss = cp.yty - 2 * beta @ cp.xty + beta @ cp.xtx @ beta
    pwrss = rss - 2 * np.sum(modes * resid_z) + np.einsum("gi,gij,gj->", modes, cp.ztz, modes) + np.sum(u * u)
    deviance = _deviance(factor.log_det_l[0], pwrss, np.linalg.slogdet(rxtrx)[1] if reml else 0.0, cp, reml)
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
    """The per-group part of lme4's blocked Cholesky factor at each of m thetas: L of Lambda'Z'Z Lambda + I,
    RZX = L^-1 Lambda'Z'X, cu = L^-1 Lambda'Z'y, and X'X - RZX'RZX (arrays with a leading axis of m).

    Lambda' times every group's cross-products is one matrix product per theta (``CrossProducts.ztz_rows``,
    ``ztw_rows``) rather than one per group: the same products and sums, so the same numbers, a fraction of the
    calls."""

    def __init__(self, thetas: np.ndarray, cp: CrossProducts):
        groups, q, p = cp.ztx.shape
        m = len(thetas)
        self.lam = lam = np.zeros((m, q, q))
        lam[(slice(None), *_tril(q))] = thetas
        lam_t = np.swapaxes(lam, 1, 2)
        left = _by_group(lam_t @ cp.ztz_rows, groups).reshape(m, groups * q, q)        # Lambda' Z'Z per group
        inner = (left @ lam).reshape(m * groups, q, q) + _eye(q)
        self.chol = chol = _cholesky(inner).reshape(m, groups, q, q)
        solved = _forward(chol.reshape(m * groups, q, q),
                          _by_group(lam_t @ cp.ztw_rows, groups).reshape(m * groups, q, p + 1))
        solved = solved.reshape(m, groups, q, p + 1)
        self.rzx, self.cu = solved[..., :p], solved[..., p]
        self.rzx_flat = self.rzx.reshape(m, -1, p)
        self.rxtrx = cp.xtx - np.swapaxes(self.rzx_flat, 1, 2) @ self.rzx_flat
        self.log_det_l = 2 * np.sum(np.log(np.diagonal(chol, axis1=2, axis2=3)).reshape(m, -1), axis=1)


@functools.cache
def _eye(q: int) -> np.ndarray:
    """The q x q identity, made once per q."""
    return np.eye(q)


def _deviance(log_det_l: float, pwrss: float, log_det_rx: float, cp: CrossProducts, reml: bool) -> float:
    """The profiled deviance of a one-factor model (``profiled`` with its n and p)."""
    return profiled(log_det_l, pwrss, log_det_rx, cp.n, cp.ztx.shape[2], reml)


def profiled(log_det_l: float, pwrss: float, log_det_rx: float, n: int, p: int, reml: bool) -> float:
    """lme4's profiled deviance (REML criterion when ``reml``) from its three pieces (Bates et al. 2015, Eq. 34, 41)."""
    return float(_profiled(log_det_l, pwrss, log_det_rx, n, p, reml))


def _profiled(log_det_l, pwrss, log_det_rx, n: int, p: int, reml: bool):
    """``profiled`` of numbers or, elementwise, of arrays of them."""
    divisor = dof(n, p, reml)
    return log_det_l + divisor * (1 + np.log(2 * np.pi * pwrss / divisor)) + log_det_rx


def _dof(cp: CrossProducts, reml: bool) -> int:
    """The divisor of sigma^2's estimate of a one-factor model."""
    return dof(cp.n, cp.ztx.shape[2], reml)


def dof(n: int, p: int, reml: bool) -> int:
    """The divisor of sigma^2's estimate: n - p for REML, n for ML."""
    return n - p if reml else n


def _forward(lower: np.ndarray, b: np.ndarray) -> np.ndarray:
    """X with lower[g] X[g] = b[g] for every group g at once (forward substitution over the q rows, elementwise over
    the groups: q is small, the groups many, so this beats a general batched solve or inverse several times)."""
    x = np.empty_like(b)
    for i in range(lower.shape[1]):
        row = b[:, i]
        if i:
            done = lower[:, i, 0, None] * x[:, 0]
            for k in range(1, i):
                done = done + lower[:, i, k, None] * x[:, k]
            row = row - done
        x[:, i] = row / lower[:, i, i, None]
    return x


def _cholesky(a: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of each q x q matrix of ``a`` (... x q x q). For q <= 2 in closed form, elementwise,
    with LAPACK's own arithmetic (OpenBLAS's potf2: l00 = sqrt(a00), l10 = a10 * (1 / l00), l11 = sqrt(a11 - l10^2),
    and l10 = 0 where an overflow made l00 infinite),
    so the same numbers as ``np.linalg.cholesky`` at a fraction of its cost for thousands of small matrices; larger q
    by ``np.linalg.cholesky``. LinAlgError where a matrix is not positive definite, as there."""
    q = a.shape[-1]
    if q > 2:
        return np.linalg.cholesky(a)
    if np.any(a[..., 0, 0] <= 0):
        raise np.linalg.LinAlgError("Matrix is not positive definite")
    lower = np.zeros_like(a)
    lower[..., 0, 0] = l00 = np.sqrt(a[..., 0, 0])
    if q == 2:
        scale = 1.0 / l00
        l10 = lower[..., 1, 0]
        np.multiply(a[..., 1, 0], scale, out=l10, where=scale != 0.0)  # BLAS scales by 0 to 0, an infinite a10 too
        a11 = a[..., 1, 1] - l10 * l10
        if np.any(a11 <= 0):
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        lower[..., 1, 1] = np.sqrt(a11)
    return lower


def _lower_solve(lower: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with lower[k] x[k] = b[k] for each of m small lower-triangular matrices (forward substitution)."""
    x = np.empty_like(b)
    for i in range(b.shape[1]):
        x[:, i] = (b[:, i] - np.vecdot(lower[:, i, :i], x[:, :i])) / lower[:, i, i]
    return x


def gradient(deviance, theta: np.ndarray, step: float = 1e-5, many=None) -> np.ndarray:
    """Gradient of ``deviance`` (a function of theta) by central differences (defined for any sign of theta).
    ``many``, when given, is the same function of an array of points (one a row), which evaluates them at once
    (``OneFactor.criteria``): the same numbers, for about the cost of two."""
    theta = np.asarray(theta, dtype=float)
    return _central(_at(deviance, many, _gradient_points(theta, step)), step)


def value_and_gradient(deviance, theta: np.ndarray, step: float = 1e-5, many=None) -> tuple[float, np.ndarray]:
    """``deviance`` at theta and its ``gradient`` there, the points of both evaluated together by ``many``."""
    theta = np.asarray(theta, dtype=float)
    values = _at(deviance, many, [theta, *_gradient_points(theta, step)])
    return float(values[0]), _central(values[1:], step)


def _gradient_points(theta: np.ndarray, step: float) -> list[np.ndarray]:
    """theta + step e_i for each i, then theta - step e_i: the points of a central-difference gradient."""
    steps = np.eye(len(theta)) * step
    return [theta + e for e in steps] + [theta - e for e in steps]


def _central(values: np.ndarray, step: float) -> np.ndarray:
    """The central differences of ``_gradient_points``' values."""
    half = len(values) // 2
    return (values[:half] - values[half:]) / (2 * step)


def hessian(deviance, theta: np.ndarray, step: float = 1e-4, many=None) -> np.ndarray:
    """Hessian of ``deviance`` (a function of theta) by central differences (lme4's ``deriv12``, delta 1e-4);
    ``many`` as in ``gradient``."""
    theta = np.asarray(theta, dtype=float)
    steps = np.eye(len(theta)) * step
    pairs = list(zip(*np.triu_indices(len(theta))))
    values = _at(deviance, many, [point for i, j in pairs for point in
                                  (theta + steps[i] + steps[j], theta + steps[i] - steps[j],
                                   theta - steps[i] + steps[j], theta - steps[i] - steps[j])]).reshape(-1, 4)
    result = np.empty((len(theta), len(theta)))
    for (i, j), (pp, pm, mp, mm) in zip(pairs, values):
        result[i, j] = result[j, i] = (pp - pm - mp + mm) / (4 * step**2)
    return result


def _at(deviance, many, points: list[np.ndarray]) -> np.ndarray:
    """``deviance`` at each of ``points``: by ``many`` at once when given, else one by one."""
    if many is not None:
        return np.asarray(many(np.array(points)), dtype=float)
    return np.array([deviance(point) for point in points], dtype=float)


def projected(grad: np.ndarray, theta: np.ndarray, bounds: list, tol: float = 1e-8) -> np.ndarray:
    """The gradient that counts at a bounded optimum: zero where a diagonal element sits on
    its bound 0 and the deviance rises into the feasible region."""
    on_bound = np.array([low is not None for low, _ in bounds]) & (np.asarray(theta) <= tol)
    return np.where(on_bound & (grad > 0), 0.0, grad)


class OneFactor:
    """The deviance of a model of one random term as a function of theta alone, with what an optimizer asks
    of it: its bounds, lme4's start, a start without correlations; ``solve`` for the full solution.
    ``mlmi.fit.deviance_factors.Terms`` answers the same for several terms."""

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

    def criteria(self, thetas: np.ndarray) -> np.ndarray:
        """The deviance at each row of ``thetas``, all at once (``criteria``)."""
        return criteria(thetas, self.cp, self.reml)

    def solve(self, theta: np.ndarray) -> Solution:
        """The full solution at theta (``solve``)."""
        return solve(theta, self.cp, self.reml)
