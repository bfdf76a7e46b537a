"""lme4's profiled deviance for several random terms (crossed or nested grouping factors).

The same criterion as ``mlmi.fit.deviance`` (Bates et al. 2015, JSS 67(1), section 3), with Lambda
block-diagonal over the random terms: each term b has its own lower-triangular k_b x k_b factor,
repeated for every level of its grouping factor. Where factors cross, Lambda'Z'Z Lambda + I is
no longer block-diagonal per group, and its Cholesky factor L is computed in two blocks, the
way lme4's CHOLMOD factor does it after ordering:

- the first term (the most levels: lme4 orders terms so) has A11 block-diagonal, one k1 x k1
  block per level, factored level by level as in the single-factor path;
- the other terms' effects (q2 of them) meet in the Schur complement
  S = A22 - M'M, M = L11^-1 A12, a dense q2 x q2 matrix factored by LAPACK.

So L = [[L11, 0], [M', L22]] with everything but S kept sparse (scipy.sparse). Nested models
(students in classes in schools) and crossed ones whose smaller factors have up to a few
thousand effects (InstEval: 2,972 students x 1,128 lecturers, S is 1,128 x 1,128) fit this
way; ``DENSE_LIMIT`` bounds q2. Chosen by measurement on InstEval (one thread): the whole
criterion this way takes 0.053 s, where scipy's only sparse factorisation, SuperLU (``splu``,
symmetric mode), takes 0.26 s (MMD order) or 1.6 s (COLAMD) for the factor alone. A general
sparse Cholesky (CHOLMOD through scikit-sparse) could not be had: PyPI has no wheels of it,
its 0.5 source needs SuiteSparse 7 where Debian 12 ships 5.12, and 0.4.16's build requirements
no longer install.
"""
import copy
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from mlmi.fit import deviance
from mlmi.fit.random_design import RandomEffects

#: The most random effects outside the largest term the dense Schur complement takes (8 bytes x q2^2:
#: 10,000 is 800 MB).
DENSE_LIMIT = 10_000


@dataclass(frozen=True)
class Solution:
    """The penalised least squares solution at one theta, for several terms."""

    deviance: float
    beta: np.ndarray
    sigma2: float
    vcov: np.ndarray
    modes: list          # per block: levels x k conditional modes
    cond_var: list       # per block: levels x k x k conditional variances


class Terms:
    """Cross-products of y, X and the sparse Z of several random terms, and the deviance over them."""

    def __init__(self, y: np.ndarray, X: np.ndarray, structure: RandomEffects, reml: bool):
        self.reml, self.n, self.p = reml, len(y), X.shape[1]
        self.ks = [block.k for block in structure.blocks]
        self.levels = [structure.factors[block.factor].n_levels for block in structure.blocks]
        self.gp = structure.gp
        q, self.q1 = self.gp[-1], self.gp[1]
        if q - self.q1 > DENSE_LIMIT:
            raise ValueError(f"{q - self.q1} random effects outside the largest term ({self.q1} effects): more than "
                             f"the {DENSE_LIMIT} mlmi's dense Schur step takes; fit fewer or smaller terms beside "
                             "the largest")
        self.whole = _CsrPattern(*_lambda_pattern(self.ks, self.levels, self.gp), (q, q))
        self.rest = _CsrPattern(*_lambda_pattern(self.ks[1:], self.levels[1:], [g - self.q1 for g in self.gp[1:]]),
                                (q - self.q1, q - self.q1))
        self.first = _CsrPattern(*_block_pattern(self.levels[0], self.ks[0]), (self.q1, self.q1))
        first = structure.blocks[0]
        codes = structure.factors[first.factor].codes
        self.z1t = _CsrPattern((codes[:, None] * first.k + np.arange(first.k)).T.ravel(),
                               np.tile(np.arange(self.n), first.k), (self.q1, self.n))      # Z1' (q1 x n)
        self.indicator = sparse.csr_matrix((np.ones(self.n), (codes, np.arange(self.n))),
                                           shape=(self.levels[0], self.n))                   # level of each row
        self.Z = _sparse_z(structure, self.n)
        self.z1, self.Z2 = first.Z, self.Z[:, self.q1:].tocsc()
        self._cross(y, X)

    def _cross(self, y: np.ndarray, X: np.ndarray) -> None:
        """Keep y and X and the cross-products the factor needs of them and Z = [Z1 Z2] (Z1's columns per row
        in ``z1``): Z1'Z1 per level of the first term, Z1'Z2, Z2'Z2, Z'[X y], X'X, X'y, y'y."""
        self.y, self.X = y, X
        xy = np.column_stack([X, y])
        z1, k1, g1 = self.z1, self.ks[0], self.levels[0]
        self.ztz1 = (self.indicator @ (z1[:, :, None] * z1[:, None, :]).reshape(self.n, -1)).reshape(g1, k1, k1)
        z1t = self.z1t.matrix(z1.T.ravel())
        self.ztz12 = (z1t @ self.Z2).tocsr()
        self.ztz22 = (self.Z2.T @ self.Z2).tocsr()
        self.ztxy = np.vstack([z1t @ xy, self.Z2.T @ xy])
        self.ztxy1 = self.ztxy[:self.q1].reshape(g1, k1, -1)
        self.xtx, self.xty, self.yty = X.T @ X, X.T @ y, float(y @ y)

    def weighted(self, sqrt_w: np.ndarray, y: np.ndarray) -> "Terms":
        """The same terms with every row of X and Z scaled by ``sqrt_w`` and the response ``y``: the penalised
        weighted least squares of one PIRLS step of a generalized model (``mlmi.fit.glmm``)."""
        other = copy.copy(self)
        other.Z, other.Z2 = (_scale_rows(Z, sqrt_w) for Z in (self.Z, self.Z2))
        other.z1 = sqrt_w[:, None] * self.z1
        other._cross(y, sqrt_w[:, None] * self.X)
        return other

    @property
    def bounds(self) -> list:
        """lme4's bounds: each term's diagonal elements >= 0, the others free."""
        return [bound for k in self.ks for bound in deviance.lower_bounds(k)]

    @property
    def start(self) -> np.ndarray:
        """lme4's start: every term's Lambda the identity."""
        return np.concatenate([np.eye(k)[np.tril_indices(k)] for k in self.ks])

    def uncorrelated(self, theta: np.ndarray) -> np.ndarray:
        """theta with the same SDs in every term and every correlation zero."""
        return np.concatenate([np.diag(np.sqrt(np.sum(lam**2, axis=1)))[np.tril_indices(len(lam))]
                               for lam in self.lambdas(theta)])

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """Each term's k x k Lambda from theta."""
        return deviance.lambdas(theta, self.ks)

    def lambda_rest(self, lams: list[np.ndarray]) -> sparse.csr_matrix:
        """The sparse Lambda of the terms after the first (q2 x q2), from each term's k x k Lambda."""
        return self.rest.matrix(_tiled(lams[1:], self.levels[1:]))

    def lambda_matrix(self, theta: np.ndarray) -> sparse.csr_matrix:
        """The q x q sparse Lambda: each term's k x k Lambda repeated for every level of its factor."""
        return self.whole.matrix(_tiled(self.lambdas(theta), self.levels))

    def criterion(self, theta: np.ndarray) -> float:
        """The deviance at theta (REML criterion, or -2 logLik for ML); +inf where rounding breaks a factor."""
        try:
            factor = Factor(self, theta)
            rx = np.linalg.cholesky(factor.rxtrx)
        except np.linalg.LinAlgError:
            return np.inf
        cbeta = linalg.solve_triangular(rx, self.xty - factor.rzx.T @ factor.cu, lower=True)
        pwrss = self.yty - factor.cu @ factor.cu - cbeta @ cbeta
        log_det_rx = 2 * np.sum(np.log(np.diag(rx))) if self.reml else 0.0
        return deviance.profiled(factor.log_det_l, pwrss, log_det_rx, self.n, self.p, self.reml)

    def solve(self, theta: np.ndarray) -> Solution:
        """The fixed effects, their covariance, sigma, the conditional modes and variances at theta."""
        factor = Factor(self, theta)
        rxtrx = factor.rxtrx
        beta = np.linalg.solve(rxtrx, self.xty - factor.rzx.T @ factor.cu)
        u = factor.back(factor.cu - factor.rzx @ beta)                 # L'u = cu - RZX beta
        residual = self.y - self.X @ beta - self.Z @ factor.lam_times(u)
        pwrss = residual @ residual + u @ u
        log_det_rx = np.linalg.slogdet(rxtrx)[1] if self.reml else 0.0
        dev = deviance.profiled(factor.log_det_l, pwrss, log_det_rx, self.n, self.p, self.reml)
        sigma2 = pwrss / deviance.dof(self.n, self.p, self.reml)
        modes, cond_var = self.conditional(factor, u, sigma2)
        return Solution(float(dev), beta, float(sigma2), sigma2 * np.linalg.inv(rxtrx), modes, cond_var)

    def conditional(self, factor: "Factor", u: np.ndarray, sigma2: float) -> tuple[list, list]:
        """Each term's conditional modes (levels x k, b = Lambda u) and conditional variances (levels x k x k,
        sigma^2 Lambda (L'L)^-1 Lambda' in its blocks), from the spherical modes ``u`` and the factor at their theta."""
        b = factor.lam_times(u)
        blocks = self._cond_blocks(factor)
        modes, cond_var = [], []
        for i, (k, lam) in enumerate(zip(self.ks, factor.lams)):
            modes.append(b[self.gp[i]:self.gp[i + 1]].reshape(-1, k))
            cond_var.append(sigma2 * (lam @ blocks[i] @ lam.T))
        return modes, cond_var

    def _cond_blocks(self, factor: "Factor") -> list[np.ndarray]:
        """Each term's per-level k x k diagonal blocks of (Lambda'Z'Z Lambda + I)^-1 = L^-T L^-1.

        For the other terms they are blocks of S^-1; for the first, L11g^-T (I + W_g W_g') L11g^-1 with
        W = M L22^-T, the rows of level g in W_g."""
        l22inv = linalg.solve_triangular(factor.l22, np.eye(len(factor.l22)), lower=True)
        s_inv = l22inv.T @ l22inv
        k1 = self.ks[0]
        w = np.asarray(factor.m @ l22inv.T).reshape(self.levels[0], k1, len(factor.l22))
        l11inv = factor.l11inv_blocks
        inner = np.eye(k1) + w @ np.swapaxes(w, 1, 2)
        blocks = [np.swapaxes(l11inv, 1, 2) @ inner @ l11inv]
        for i, k in enumerate(self.ks[1:], start=1):
            start = self.gp[i] - self.q1
            index = start + np.arange(self.levels[i] * k).reshape(-1, k)
            blocks.append(s_inv[index[:, :, None], index[:, None, :]])
        return blocks


class Factor:
    """lme4's blocked Cholesky factor at theta: L11 per level of the first term, M = L11^-1 A12, L22 of the
    Schur complement; RZX and cu (L^-1 Lambda'Z'X and L^-1 Lambda'Z'y), X'X - RZX'RZX and log|L|^2.

    The first term's Lambda and L11 are block diagonal: they stay per-level k1 x k1 arrays, and only their
    product L11^-1 Lambda1' becomes a sparse matrix, the one that meets A12."""

    def __init__(self, terms: Terms, theta: np.ndarray):
        self.lams = lams = terms.lambdas(theta)
        lam1 = lams[0]
        chol = np.linalg.cholesky(lam1.T @ terms.ztz1 @ lam1 + np.eye(len(lam1)))
        self.l11inv_blocks = linv = np.linalg.inv(chol)
        self.lam2 = lam2 = terms.lambda_rest(lams)
        scaled = linv @ lam1.T                                   # per level: L11g^-1 Lambda1'
        self.m = m = (terms.first.matrix(scaled.ravel()) @ terms.ztz12 @ lam2).tocsr()
        schur = (lam2.T @ terms.ztz22 @ lam2).toarray() + np.eye(lam2.shape[0]) - (m.T @ m).toarray()
        self.l22 = np.linalg.cholesky(schur)
        q1 = terms.q1
        c1 = (scaled @ terms.ztxy1).reshape(q1, -1)
        c2 = linalg.solve_triangular(self.l22, lam2.T @ terms.ztxy[q1:] - m.T @ c1, lower=True)
        solved = np.vstack([c1, c2])
        self.rzx, self.cu = solved[:, :-1], solved[:, -1]
        self.rxtrx = terms.xtx - self.rzx.T @ self.rzx
        self.log_det_l = 2 * (np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2))) + np.sum(np.log(np.diag(self.l22))))

    def back(self, rhs: np.ndarray) -> np.ndarray:
        """The solution u of L'u = ``rhs`` (the back substitution that gives the spherical modes)."""
        q1 = self.m.shape[0]
        u2 = linalg.solve_triangular(self.l22, rhs[q1:], lower=True, trans="T")
        r1 = (rhs[:q1] - self.m @ u2).reshape(len(self.l11inv_blocks), -1)
        return np.concatenate([np.einsum("gji,gj->gi", self.l11inv_blocks, r1).ravel(), u2])

    def lam_times(self, u: np.ndarray) -> np.ndarray:
        """Lambda u: the random effects b of the spherical ones."""
        q1 = self.m.shape[0]
        u1 = u[:q1].reshape(len(self.l11inv_blocks), -1)
        return np.concatenate([(u1 @ self.lams[0].T).ravel(), self.lam2 @ u[q1:]])


class _CsrPattern:
    """A fixed sparsity pattern (rows, columns of its entries) as CSR structure, filled with values in the
    pattern's own entry order: building the matrix at each theta (or weights) then neither sorts nor sums."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
        order = sparse.csr_matrix((np.arange(1, len(rows) + 1, dtype=float), (rows, cols)), shape=shape)
        self.order = order.data.astype(int) - 1
        self.indices, self.indptr, self.shape = order.indices, order.indptr, shape

    def matrix(self, values: np.ndarray) -> sparse.csr_matrix:
        """The matrix with ``values`` (in the pattern's entry order) at the pattern's places."""
        return sparse.csr_matrix((values[self.order], self.indices, self.indptr), shape=self.shape)


def _scale_rows(matrix: sparse.csc_matrix, scale: np.ndarray) -> sparse.csc_matrix:
    """diag(scale) @ matrix, by scaling its stored values (no product)."""
    return sparse.csc_matrix((matrix.data * scale[matrix.indices], matrix.indices, matrix.indptr), shape=matrix.shape)


def _sparse_z(structure: RandomEffects, n: int) -> sparse.csc_matrix:
    """Z (n x q): row i has term b's columns at the effects of its level (``Gp[b] + level * k + column``)."""
    rows, cols, values = [], [], []
    for start, block in zip(structure.gp, structure.blocks):
        codes = structure.factors[block.factor].codes
        for c in range(block.k):
            rows.append(np.arange(n))
            cols.append(start + codes * block.k + c)
            values.append(block.Z[:, c])
    q = structure.gp[-1]
    return sparse.csc_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, q))


def _tiled(lams: list[np.ndarray], levels: list[int]) -> np.ndarray:
    """Lambda's non-zero values in ``_lambda_pattern``'s order: each term's lower triangle, row by row, once per
    level of its factor."""
    return np.concatenate([np.tile(lam[np.tril_indices(len(lam))], n) for lam, n in zip(lams, levels)])


def _lambda_pattern(ks: list[int], levels: list[int], gp: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of Lambda's non-zero pattern: each term's lower triangle (row by row) at each level,
    level after level, term after term (the order of each term's triangle tiled over its levels)."""
    rows, cols = [], []
    for k, n, start in zip(ks, levels, gp):
        r, c = np.tril_indices(k)
        offsets = start + k * np.arange(n)[:, None]
        rows.append((offsets + r).ravel())
        cols.append((offsets + c).ravel())
    return np.concatenate(rows), np.concatenate(cols)


def _block_pattern(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of n dense k x k diagonal blocks, block after block, each row by row."""
    offsets = k * np.arange(n)[:, None, None]
    r, c = np.indices((k, k))
    return (offsets + r).ravel(), (offsets + c).ravel()
