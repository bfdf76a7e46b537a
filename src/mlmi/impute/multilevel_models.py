"""Conditional draws of the multilevel Gibbs sampler (``mlmi.impute.multilevel``), vectorised over clusters.

Each function draws one block of a linear mixed model's parameters from its full conditional,

    r_ij = x_ij' beta + z_ij' u_j + e_ij,   u_j ~ N_q(0, Psi),   e_ij ~ N(0, sigma^2),

given the others and the current (completed) data: ``beta`` under a flat prior, the ``u_j`` of
all clusters at once, ``Psi`` under an inverse-Wishart prior and ``sigma^2`` under a scaled
inverse-chi-square prior (Gelman et al. 2013, BDA3, ch. 14-15; Goldstein, Carpenter & Browne
2014). A probit model is the same model on a latent normal response with ``sigma^2 = 1``
(Albert & Chib 1993), whose latent values ``draw_latent`` draws.

Rows are sorted by cluster once (``Clusters``), so every per-cluster sum is one
``np.add.reduceat`` and no function loops over clusters in Python.

References
----------
Albert, J. H. & Chib, S. (1993). Bayesian analysis of binary and polychotomous response data.
JASA 88, 669-679.
Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A. & Rubin, D. B. (2013).
Bayesian Data Analysis, 3rd ed. CRC.
Goldstein, H., Carpenter, J. R. & Browne, W. J. (2014). Fitting multilevel multivariate models
with missing data in responses and covariates that may include interactions and non-linear
terms. JRSS A 177, 553-564.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtri_exp


@dataclass(frozen=True)
class Clusters:
    """Rows sorted by cluster: each row's cluster number, each cluster's first row and size."""

    index: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, index: np.ndarray) -> "Clusters":
        """The layout of ``index``: cluster numbers 0..J-1, sorted, every cluster present."""
        sizes = np.bincount(index)
        if np.any(np.diff(index) < 0) or np.any(sizes == 0):
            raise ValueError("rows must be sorted by cluster, with clusters numbered 0..J-1")
        return cls(index, np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)

    @property
    def count(self) -> int:
        """The number of clusters J."""
        return len(self.sizes)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums of a row vector: shape (J,)."""
        return np.add.reduceat(values, self.starts)

    def spread(self, per_cluster: np.ndarray) -> np.ndarray:
        """A per-cluster vector repeated at every row of its cluster."""
        return np.take(per_cluster, self.index)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster means of a row vector: shape (J,)."""
        return self.sum(values) / self.sizes


def draw_fixed(rng: np.random.Generator, X: np.ndarray, r: np.ndarray, sigma2: float) -> np.ndarray:
    """beta | rest ~ N((X'X)^-1 X'r, sigma^2 (X'X)^-1) under a flat prior, r = response - Z u.

    Raises
    ------
    numpy.linalg.LinAlgError
        When X'X is not positive definite (collinear predictors).
    """
    return normal_from_precision(rng, X.T @ X / sigma2, X.T @ r / sigma2)


def normal_from_precision(rng: np.random.Generator, precision: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """One draw of N(precision^-1 shift, precision^-1): with R'R = precision (R = L', L its Cholesky
    factor), mean = R^-1 L^-1 shift plus R^-1 z, z ~ N(0, I). (numpy's small dense solves: scipy's
    triangular solver stalls on tiny matrices when BLAS threads compete for the cores.)"""
    factor = np.linalg.cholesky(precision)
    half = np.linalg.solve(factor, shift) + rng.standard_normal(len(shift))
    return np.linalg.solve(factor.T, half)


@dataclass(frozen=True)
class CrossProducts:
    """Per-cluster cross-products of Z with Z, X and y, shapes (J, q, q), (J, q, p), (J, q): all that the
    blocked draws need from the rows, one ``np.add.reduceat`` per pair of columns."""

    ZtZ: np.ndarray
    ZtX: np.ndarray
    Zty: np.ndarray

    @classmethod
    def of(cls, Z: np.ndarray, X: np.ndarray, y: np.ndarray, clusters: Clusters) -> "CrossProducts":
        """The cross-products of these rows (sorted by cluster)."""
        q = Z.shape[1]
        ZtZ = np.empty((clusters.count, q, q))
        for i in range(q):
            for k in range(i + 1):
                ZtZ[:, i, k] = ZtZ[:, k, i] = clusters.sum(Z[:, i] * Z[:, k])
        ZtX = np.stack([np.column_stack([clusters.sum(Z[:, i] * column) for column in X.T]) for i in range(q)], axis=1)
        return cls(ZtZ, ZtX, cls.response(Z, y, clusters))

    @staticmethod
    def response(Z: np.ndarray, y: np.ndarray, clusters: Clusters) -> np.ndarray:
        """Z_j'y_j for every cluster: shape (J, q)."""
        return np.column_stack([clusters.sum(Z[:, i] * y) for i in range(Z.shape[1])])

    def Ztr(self, beta: np.ndarray) -> np.ndarray:
        """Z_j'(y_j - X_j beta) for every cluster, without another pass over the rows."""
        return self.Zty - self.ZtX @ beta


def draw_fixed_marginal(rng: np.random.Generator, X: np.ndarray, y: np.ndarray, cross: CrossProducts, sigma2: float,
                        factor: np.ndarray) -> np.ndarray:
    """beta | Psi, sigma^2 with the random effects integrated out (blocked with u: Chib & Carlin 1999):

        beta ~ N((X'V^-1 X)^-1 X'V^-1 y, (X'V^-1 X)^-1),   V_j = sigma^2 I + Z_j Psi Z_j',

    with V_j^-1 = (I - Z_j L M_j^-1 L' Z_j') / sigma^2, M_j = L'Z_j'Z_j L + sigma^2 I and L L' = Psi
    (``factor``; Woodbury in lme4's relative-factor form, which needs no Psi^-1 and stays well conditioned,
    M_j >= sigma^2 I, when Psi is near singular), so only the per-cluster cross-products Z_j'Z_j, Z_j'X_j
    and Z_j'y_j are needed. Drawing beta without conditioning on u removes the slow mixing of beta against
    the mean of the u_j (the centred parameterisation's weakness when clusters carry little information
    about their own slopes).
    """
    p = X.shape[1]
    scaled = np.einsum("ab,jac->jbc", factor, np.concatenate([cross.ZtX, cross.Zty[:, :, None]], axis=2))
    solved = np.linalg.solve(_relative_precision(cross.ZtZ, factor, sigma2), scaled)
    XtVX = (X.T @ X - np.einsum("jkp,jkr->pr", scaled[:, :, :p], solved[:, :, :p])) / sigma2
    XtVy = (X.T @ y - np.einsum("jkp,jk->p", scaled[:, :, :p], solved[:, :, p])) / sigma2
    return normal_from_precision(rng, XtVX, XtVy)


def _relative_precision(ZtZ: np.ndarray, factor: np.ndarray, sigma2: float) -> np.ndarray:
    """M_j = L'Z_j'Z_j L + sigma^2 I for every cluster: shape (J, q, q)."""
    return np.einsum("ab,jac,cd->jbd", factor, ZtZ, factor) + sigma2 * np.eye(len(factor))


def draw_random(rng: np.random.Generator, ZtZ: np.ndarray, Ztr: np.ndarray, sigma2: float,
                factor: np.ndarray) -> np.ndarray:
    """u_j | rest ~ N(V_j Z_j'r_j / sigma^2, V_j), V_j = (Z_j'Z_j / sigma^2 + Psi^-1)^-1, for all j at once.

    Drawn as u_j = L v_j (L L' = Psi, ``factor``) with v_j ~ N(M_j^-1 L'Z_j'r_j, sigma^2 M_j^-1),
    M_j = L'Z_j'Z_j L + sigma^2 I: the same law without Psi^-1, so a near-singular Psi costs no accuracy.
    ``Ztr`` holds Z_j'r_j with r = response - X beta. Returns the (J, q) matrix of draws; the J q x q
    systems are solved as one stacked Cholesky factorisation.
    """
    chol = np.linalg.cholesky(_relative_precision(ZtZ, factor, sigma2) / sigma2)
    half = np.linalg.solve(chol, (Ztr @ factor)[:, :, None] / sigma2) + rng.standard_normal(Ztr.shape)[:, :, None]
    return np.linalg.solve(np.swapaxes(chol, 1, 2), half)[:, :, 0] @ factor.T


def interweave(rng: np.random.Generator, ZtZ: np.ndarray, Ztr: np.ndarray, sigma2: float, u: np.ndarray,
               psi: np.ndarray, prior_df: float, prior_scale: np.ndarray):
    """Redraw (u, Psi) through the non-centred parameterisation u_j = L xi_j, Psi = L L': an ancillarity-
    sufficiency interweaving step (Yu & Meng 2011), which frees Psi from the u_j it was drawn from.

    Given xi_j = L^-1 u_j (L the Cholesky factor of the current Psi) and r = y - X beta, the model is a
    regression r_ij = sum_(a >= b) L_ab z_ija xi_jb + e_ij on the q(q+1)/2 free elements of L, whose
    W'W and W'r follow from Z_j'Z_j and Z_j'r_j. A proposal L* from that regression's flat-prior
    posterior, N((W'W)^-1 W'r, sigma^2 (W'W)^-1), is an independence Metropolis-Hastings step whose
    likelihood cancels, accepted with probability min(1, p(L*) / p(L)), p(L) = IW(L L'; prior_df,
    prior_scale) prod_i |L_ii|^(q - i) (i = 0..q-1; the Jacobian of Psi = L L'). Returns the new
    (u, Psi), or the old ones when the proposal is rejected.
    """
    q = len(psi)
    factor = np.linalg.cholesky(psi)
    xi = np.linalg.solve(factor, u.T).T
    pairs = [(a, b) for a in range(q) for b in range(a + 1)]
    WtW = np.array([[ZtZ[:, a, c] @ (xi[:, b] * xi[:, d]) for c, d in pairs] for a, b in pairs])
    Wtr = np.array([Ztr[:, a] @ xi[:, b] for a, b in pairs])
    free = normal_from_precision(rng, WtW / sigma2, Wtr / sigma2)
    proposal = np.zeros((q, q))
    proposal[tuple(np.array(pairs).T)] = free
    log_ratio = _log_factor_prior(proposal, prior_df, prior_scale) - _log_factor_prior(factor, prior_df, prior_scale)
    if np.log(1.0 - rng.random()) < log_ratio:
        return xi @ proposal.T, proposal @ proposal.T
    return u, psi


def _log_factor_prior(factor: np.ndarray, prior_df: float, prior_scale: np.ndarray) -> float:
    """log of the IW(prior_df, prior_scale) density of Psi = L L' times the Jacobian prod_i |L_ii|^(q - i),
    up to a constant: -(df + q + 1) sum log|L_ii| + sum (q - i) log|L_ii| - tr(S Psi^-1) / 2."""
    q = len(factor)
    log_diagonal = np.log(np.abs(np.diag(factor)))
    inverse = np.linalg.inv(factor)
    return float(-(prior_df + q + 1) * log_diagonal.sum() + (q - np.arange(q)) @ log_diagonal
                 - 0.5 * np.sum(prior_scale * (inverse.T @ inverse)))


def draw_covariance(rng: np.random.Generator, u: np.ndarray, prior_df: float, prior_scale: np.ndarray) -> np.ndarray:
    """Psi | u ~ IW(prior_df + J, prior_scale + sum_j u_j u_j') under the prior IW(prior_df, prior_scale)."""
    return inverse_wishart(rng, prior_df + len(u), prior_scale + u.T @ u)


def draw_variance(rng: np.random.Generator, residuals: np.ndarray, prior_df: float, prior_scale: float) -> float:
    """sigma^2 | rest = (prior_scale + sum e^2) / chi^2_(prior_df + n) under the prior IW_1(prior_df, prior_scale).

    ``prior_df = 0, prior_scale = 0`` is Jeffreys' p(sigma^2) ∝ 1/sigma^2.
    """
    return float((prior_scale + residuals @ residuals) / rng.chisquare(prior_df + len(residuals)))


def inverse_wishart(rng: np.random.Generator, df: float, scale: np.ndarray) -> np.ndarray:
    """One draw of IW(df, scale) (mean scale / (df - q - 1)): the inverse of W ~ Wishart(df, scale^-1),
    W = L A A' L' with L L' = scale^-1 and A Bartlett's lower triangle (A_ii^2 ~ chi^2_(df - i), A_ij ~ N(0, 1))."""
    q = len(scale)
    chol = np.linalg.cholesky(np.linalg.inv(scale))
    bartlett = np.tril(rng.standard_normal((q, q)), -1) + np.diag(np.sqrt(rng.chisquare(df - np.arange(q))))
    root = chol @ bartlett
    return np.linalg.inv(root @ root.T)


def draw_latent(rng: np.random.Generator, mean: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Albert & Chib's latent z ~ N(mean, 1) truncated to z > 0 where ``positive``, else z <= 0.

    Inverse-CDF draws on the log scale, so that neither tail loses precision or underflows:
    z = mean - Phi^-1(U Phi(mean)) above zero and z = mean + Phi^-1(U Phi(-mean)) below, U ~ U(0, 1],
    with Phi^-1(U Phi(m)) = ``ndtri_exp``(log U + log Phi(m)).
    """
    uniform = 1.0 - rng.random(len(mean))
    sign = np.where(positive, 1.0, -1.0)
    return mean - sign * ndtri_exp(np.log(uniform) + log_ndtr(sign * mean))


@dataclass(frozen=True)
class Term:
    """One column of a design matrix, ``a + b * prod(values[s] for s in sources)`` at the model's rows.

    ``sources`` is empty for a column that depends on no imputed value (then it is ``a``);
    otherwise each source is an imputed variable or a cluster mean of one, and the column is
    affine in each of them given the others (``ses``, ``ses:female`` with ``female`` observed, or
    ``ses:minority`` with both imputed); ``a`` and ``b`` are scalars or arrays over the model's rows.
    """

    a: np.ndarray | float
    b: np.ndarray | float
    sources: tuple[str, ...] = ()

    def column(self, values: dict, rows: slice | np.ndarray, count: int) -> np.ndarray:
        """The column's current values at ``rows`` of the row-level ``values`` (``count`` rows)."""
        if not self.sources:
            return np.broadcast_to(self.a, (count,))
        return self.a + self.b * self.others(values, rows, ())

    def others(self, values: dict, rows: slice | np.ndarray, leave_out: tuple[str, ...]) -> np.ndarray | float:
        """The product of the current values of the sources not in ``leave_out`` (1 when none are left)."""
        product = 1.0
        for source in self.sources:
            if source not in leave_out:
                product = product * values[source][rows]
        return product


@dataclass(eq=False)
class Model:
    """A linear mixed model (or, with ``probit``, a random-effects probit on a latent normal) and its
    current parameters: ``coef`` (beta), ``u`` (J, q), ``psi`` (q, q), ``sigma2``.

    A level-1 model has one row per data row and random effects by cluster; a level-2 model has one
    row per cluster (values taken at each cluster's first row) and no random effects.
    """

    response: str
    level: int
    probit: bool
    terms: list[Term]
    random: list[Term]
    psi_prior: tuple[float, np.ndarray]
    sigma_prior: tuple[float, float]
    coef: np.ndarray
    u: np.ndarray
    psi: np.ndarray
    sigma2: float
    latent: np.ndarray | None = None
    X: np.ndarray | None = None
    Z: np.ndarray | None = None
    fixed_cross: CrossProducts | None = None

    def rows(self, clusters: Clusters) -> slice | np.ndarray:
        """Where the model's rows are among the data rows."""
        return slice(None) if self.level == 1 else clusters.starts

    def groups(self, clusters: Clusters) -> np.ndarray:
        """The cluster of each of the model's rows."""
        return clusters.index if self.level == 1 else np.arange(clusters.count)

    def design(self, values: dict, clusters: Clusters) -> tuple[np.ndarray, np.ndarray | None]:
        """(X, Z) at the model's rows from the current values: built once, then only the columns
        that depend on imputed values are recomputed, in place."""
        rows, count = self.rows(clusters), len(self.groups(clusters))
        if self.X is None:
            self.X = np.asfortranarray(np.column_stack([t.column(values, rows, count) for t in self.terms]))
            if self.random:
                self.Z = np.asfortranarray(np.column_stack([t.column(values, rows, count) for t in self.random]))
            return self.X, self.Z
        for matrix, terms in ((self.X, self.terms), (self.Z, self.random)):
            for c, term in enumerate(terms):
                if term.sources:
                    matrix[:, c] = term.column(values, rows, count)
        return self.X, self.Z

    def eta(self, X: np.ndarray, Z: np.ndarray | None, clusters: Clusters) -> np.ndarray:
        """The linear predictor x' beta + z' u_j at the model's rows."""
        eta = X @ self.coef
        if Z is not None:
            groups = self.groups(clusters)
            for k in range(Z.shape[1]):
                eta += Z[:, k] * np.take(self.u[:, k], groups)
        return eta

    def outcome(self, values: dict, clusters: Clusters) -> np.ndarray:
        """The response the normal model sees: the values, or a probit's latent normals."""
        return self.latent if self.probit else values[self.response][self.rows(clusters)]

    def variance(self) -> float:
        """The residual variance: sigma^2, or 1 on a probit's latent scale."""
        return 1.0 if self.probit else self.sigma2

    def _cross_products(self, X: np.ndarray, Z: np.ndarray, y: np.ndarray, clusters: Clusters) -> CrossProducts:
        """The per-cluster cross-products; Z'Z and Z'X are kept from the first iteration when no column
        of X or Z depends on imputed values, and only Z'y is recomputed."""
        if self.fixed_cross is not None:
            return dataclasses.replace(self.fixed_cross, Zty=CrossProducts.response(Z, y, clusters))
        cross = CrossProducts.of(Z, X, y, clusters)
        if not any(term.sources for term in self.terms + self.random):
            self.fixed_cross = cross
        return cross

    def update(self, rng: np.random.Generator, values: dict, clusters: Clusters) -> None:
        """One Gibbs scan of the model's parameters given the completed data: for a probit first the
        latent normals, then beta | Psi, sigma^2 (u integrated out), u | beta, Psi, sigma^2, Psi | u, an
        interweaving redraw of (u, Psi), and sigma^2 | beta, u."""
        X, Z = self.design(values, clusters)
        if self.probit:
            self.latent = draw_latent(rng, self.eta(X, Z, clusters), values[self.response][self.rows(clusters)] > 0.5)
        y = self.outcome(values, clusters)
        if Z is None:
            self.coef = draw_fixed(rng, X, y, self.variance())
        else:
            cross = self._cross_products(X, Z, y, clusters)
            factor = np.linalg.cholesky(self.psi)
            self.coef = draw_fixed_marginal(rng, X, y, cross, self.variance(), factor)
            Ztr = cross.Ztr(self.coef)
            self.u = draw_random(rng, cross.ZtZ, Ztr, self.variance(), factor)
            self.psi = draw_covariance(rng, self.u, *self.psi_prior)
            self.u, self.psi = interweave(rng, cross.ZtZ, Ztr, self.variance(), self.u, self.psi, *self.psi_prior)
        if not self.probit:
            self.sigma2 = draw_variance(rng, y - self.eta(X, Z, clusters), *self.sigma_prior)
