"""Full conditionals of the missing cells in the multilevel Gibbs sampler (``mlmi.impute.multilevel``).

A missing cell v of variable x is drawn from

    p(v | rest) ∝ p(v | its own covariate model) × prod_m p(outcome of model m | v, ...),

the product over every model m that has x (or a cluster mean of x) among its predictors: the
analysis model and the covariate models later in the sequence (Bartlett et al. 2015; Enders, Du &
Keller 2020; Erler et al. 2016). Every design column is affine in x (``Term``), so each model's
residual at row r is affine in a change d of the cell, e_r(d) = e_r - s_r d, with slope

    s_r = [r is the cell's row] (sum_c beta_c b_rc o_rc + sum_k u_jk b_rk)  +  [r in cluster j] sum_c' beta_c' b_rc' o_rc' / n_j

(c: columns of x itself, k: random slopes on x, c': columns of a cluster mean of x; o: the product of
the column's other sources, 1 for most columns, the current minority for ses:minority). A normal
model, or a probit's latent normal, then contributes a normal factor in d, and with a normal
covariate model of x the full conditional is exactly normal,

    d | rest ~ N(Q / P, 1 / P),   P = sum_m sum_r s_r^2 / sigma_m^2,   Q = sum_m sum_r s_r e_r / sigma_m^2,

own model included as s = -1 (Goldstein, Carpenter & Browne 2014). A binary x (probit covariate
model, latent marginalised) takes its exact two-point conditional, the same normal factors at
d = 0 - v and d = 1 - v times Phi(+-eta_own). A level-2 cell moves every row of its cluster.

Cells whose slopes touch disjoint rows are conditionally independent and drawn together: all
cells of x at once, unless a cluster mean of x is a predictor somewhere; then the cells of one
cluster are drawn one after another, in rounds of one cell per cluster across all clusters.

References
----------
Bartlett, J. W., Seaman, S. R., White, I. R. & Carpenter, J. R. (2015). Multiple imputation of
covariates by fully conditional specification: accommodating the substantive model. SMMR 24, 462-487.
Enders, C. K., Du, H. & Keller, B. T. (2020). A model-based imputation procedure for multilevel
regression models with random coefficients, interaction effects, and nonlinear terms. Psych. Methods 25, 88-112.
Erler, N. S., Rizopoulos, D., van Rosmalen, J., Jaddoe, V. W. V., Franco, O. H. & Lesaffre, E. M. E. H.
(2016). Dealing with missing covariates in epidemiologic studies: a comparison between multiple
imputation and a full Bayesian approach. Stat Med 35, 2955-2974.
Goldstein, H., Carpenter, J. R. & Browne, W. J. (2014). JRSS A 177, 553-564.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, log_ndtr

from mlmi.impute.multilevel_models import Clusters, Model


@dataclass(frozen=True)
class Link:
    """Where a variable enters one model: indices of the design columns of the variable itself
    (``direct``, perhaps times other sources), of a cluster mean of it (``means``: its sources are
    ``mean_sources``), and of random slopes on it (``random``)."""

    model: Model
    variable: str
    mean_sources: tuple[str, ...]
    direct: tuple[int, ...]
    means: tuple[int, ...]
    random: tuple[int, ...]


@dataclass(eq=False)
class Variable:
    """An imputed variable: its missing cells (rows at level 1, clusters at level 2), its own model,
    the models it enters, the cluster-mean sources computed from it, and the batches of cells
    drawn together."""

    name: str
    level: int
    binary: bool
    cells: np.ndarray
    own: Model
    links: list[Link]
    mean_sources: list[str]
    batches: list[np.ndarray] = field(default_factory=list)


def batches_of(cells: np.ndarray, clusters: Clusters, coupled: bool) -> list[np.ndarray]:
    """All cells together, or (``coupled``) rounds holding at most one cell of each cluster."""
    if not coupled or len(cells) == 0:
        return [cells]
    cluster = clusters.index[cells]
    first = np.searchsorted(cluster, cluster)  # cells are sorted, so their clusters are too
    rank = np.arange(len(cells)) - first
    return [cells[rank == r] for r in range(rank.max() + 1)]


@dataclass(eq=False)
class Slopes:
    """One model's part in a variable's full conditional, at every row of the model: the slopes of its
    linear predictor in a cell of the variable (``direct`` at the cell's own row, or at every row of a
    level-2 cell's cluster; ``mean`` at every row of the cell's cluster, None without cluster-mean
    columns), its residuals (kept current as cells change) and its residual variance."""

    level: int
    direct: np.ndarray
    mean: np.ndarray | None
    residual: np.ndarray
    variance: float

    @classmethod
    def of(cls, link: Link, values: dict, clusters: Clusters) -> "Slopes":
        """The slopes and residuals of ``link.model`` at the current values."""
        model = link.model
        groups, rows = model.groups(clusters), model.rows(clusters)
        X, Z = model.design(values, clusters)
        residual = model.outcome(values, clusters) - model.eta(X, Z, clusters)
        direct = np.zeros(len(groups))
        for c in link.direct:
            term = model.terms[c]
            direct = direct + model.coef[c] * term.b * term.others(values, rows, (link.variable,))
        for k in link.random:
            direct = direct + model.u[groups, k] * model.random[k].b
        mean = None
        for c in link.means:
            term = model.terms[c]
            part = model.coef[c] * term.b * term.others(values, rows, link.mean_sources) / clusters.sizes[groups]
            mean = part if mean is None else mean + part
        return cls(model.level, direct, mean, residual, model.variance())


@dataclass(eq=False)
class Conditional:
    """What a variable's cells need to be drawn: the other models' ``Slopes`` and the own model's linear
    predictor, computed once per update of the variable and moved along with its cells (every slope
    is free of the variable itself, so only the residuals change)."""

    variable: Variable
    slopes: list[Slopes]
    own_eta: np.ndarray

    @classmethod
    def of(cls, variable: Variable, values: dict, clusters: Clusters) -> "Conditional":
        """The conditional at the current values."""
        X, Z = variable.own.design(values, clusters)
        return cls(variable, [Slopes.of(link, values, clusters) for link in variable.links],
                   variable.own.eta(X, Z, clusters))

    def factors(self, batch: np.ndarray, clusters: Clusters) -> tuple[np.ndarray, np.ndarray]:
        """P and Q of the other models for the cells ``batch`` (module docstring)."""
        precision, shift = np.zeros(len(batch)), np.zeros(len(batch))
        level2 = self.variable.level == 2
        cluster = batch if level2 else clusters.index[batch]
        for s in self.slopes:
            if s.level == 2:  # one row per cluster, moved through the direct column or a cluster mean
                slope = s.direct[cluster] if level2 else s.mean[cluster]
                precision += slope ** 2 / s.variance
                shift += slope * s.residual[cluster] / s.variance
            elif level2:  # every row of the cluster moves with the cell
                precision += clusters.sum(s.direct ** 2)[cluster] / s.variance
                shift += clusters.sum(s.direct * s.residual)[cluster] / s.variance
            else:
                own_row = s.direct[batch]
                precision += own_row ** 2 / s.variance
                shift += own_row * s.residual[batch] / s.variance
                if s.mean is not None:
                    precision += (2 * own_row * s.mean[batch] + clusters.sum(s.mean ** 2)[cluster]) / s.variance
                    shift += clusters.sum(s.mean * s.residual)[cluster] / s.variance
        return precision, shift

    def move(self, batch: np.ndarray, change: np.ndarray, clusters: Clusters) -> None:
        """Keep the residuals current after the cells ``batch`` changed by ``change``: e_r -= s_r d."""
        level2 = self.variable.level == 2
        cluster = batch if level2 else clusters.index[batch]
        by_cluster = np.zeros(clusters.count)
        by_cluster[cluster] = change
        for s in self.slopes:
            if s.level == 2:
                s.residual[cluster] -= change * (s.direct[cluster] if level2 else s.mean[cluster])
            elif level2:
                s.residual -= clusters.spread(by_cluster) * s.direct
            else:
                s.residual[batch] -= change * s.direct[batch]
                if s.mean is not None:
                    s.residual -= clusters.spread(by_cluster) * s.mean


def normal_moments(conditional: Conditional, batch: np.ndarray, values: dict, clusters: Clusters):
    """Mean and precision of the exact normal full conditional of a continuous variable's cells ``batch``."""
    own = conditional.variable.own
    precision, shift = conditional.factors(batch, clusters)
    current = _current(conditional.variable, batch, values, clusters)
    precision = precision + 1 / own.sigma2
    shift = shift - (current - conditional.own_eta[batch]) / own.sigma2
    return current + shift / precision, precision


def binary_log_odds(conditional: Conditional, batch: np.ndarray, values: dict, clusters: Clusters) -> np.ndarray:
    """log P(1 | rest) - log P(0 | rest) of a binary variable's cells ``batch``: the normal factors of the
    other models at the two values, and the own probit's log Phi(eta) against log Phi(-eta)."""
    precision, shift = conditional.factors(batch, clusters)
    current = _current(conditional.variable, batch, values, clusters)
    eta = conditional.own_eta[batch]

    def log_density(new):
        change = new - current
        return -0.5 * (precision * change ** 2 - 2 * shift * change) + log_ndtr((2 * new - 1) * eta)

    return log_density(1.0) - log_density(0.0)


def _current(variable: Variable, batch: np.ndarray, values: dict, clusters: Clusters) -> np.ndarray:
    """The cells' current values."""
    return values[variable.name][batch if variable.level == 1 else clusters.starts[batch]]


def draw_cells(rng: np.random.Generator, conditional: Conditional, batch: np.ndarray, values: dict,
               clusters: Clusters) -> np.ndarray:
    """New values of the cells ``batch`` from their full conditional (module docstring)."""
    if conditional.variable.binary:
        log_odds = binary_log_odds(conditional, batch, values, clusters)
        return (rng.random(len(batch)) < expit(log_odds)).astype(float)
    mean, precision = normal_moments(conditional, batch, values, clusters)
    return mean + rng.standard_normal(len(batch)) / np.sqrt(precision)


def update_variable(rng: np.random.Generator, variable: Variable, values: dict, clusters: Clusters,
                    level2_rows: np.ndarray | None) -> None:
    """Draw every missing cell of ``variable`` batch by batch, then recompute its cluster means.

    ``level2_rows`` are the data rows of the clusters whose level-2 value is missing (None at level 1).
    """
    conditional = Conditional.of(variable, values, clusters)
    column = values[variable.name]
    for batch in variable.batches:
        new = draw_cells(rng, conditional, batch, values, clusters)
        conditional.move(batch, new - _current(variable, batch, values, clusters), clusters)
        if variable.level == 1:
            column[batch] = new
        else:
            per_cluster = column[clusters.starts]
            per_cluster[batch] = new
            column[level2_rows] = per_cluster[clusters.index[level2_rows]]
    refresh_means(variable, values, clusters)


def refresh_means(variable: Variable, values: dict, clusters: Clusters) -> None:
    """Recompute (passively) every cluster-mean source of ``variable`` from its current values."""
    if variable.mean_sources:
        means = clusters.spread(clusters.mean(values[variable.name]))
        for source in variable.mean_sources:
            values[source] = means
