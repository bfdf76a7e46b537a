"""Substantive-model-compatible multilevel imputation: a Gibbs sampler as R's ``jomo.lmer`` runs (design §9).

The joint model is factored in a fixed order (Erler et al. 2016; Enders, Du & Keller 2020):

    p(w_1) p(w_2 | w_1) ... p(x_1 | w) p(x_2 | x_1, w) ... p(y | x, w),

level-2 variables w first, then level-1 covariates x, then the analysis model for y,

    y_ij = x_ij' beta + z_ij' u_j + e_ij,   u_j ~ N_q(0, Psi),   e_ij ~ N(0, sigma^2),

with X and Z exactly as the lme4 formula builds them. Each incomplete covariate has its own model:

- a continuous level-1 x_c:  x_c,ij = v_ij' alpha_c + a_cj + eps,  a_cj ~ N(0, tau_c^2),  eps ~ N(0, omega_c^2);
- a binary level-1 x_c:  a random-intercept probit, P(x_c,ij = 1) = Phi(v_ij' alpha_c + a_cj), by
  Albert & Chib's latent normals;
- a level-2 w_c:  w_c,j = v_j' alpha_c + eps (or a probit), one value per cluster,

where v holds a constant, the fully observed columns (level-1 ones with their cluster means), the
level-2 variables and the covariates earlier in the order, with the cluster means of those that
are level-1 (the cluster means let the covariate model carry the between-cluster part; those of
imputed covariates are recomputed from the current values, passively). Level-2 variables come
first and take only level-2 predictors (and cluster means of fully observed level-1 columns), so
the factorisation stays a proper joint model. Incomplete columns outside the formula (and not
excluded) are imputed as further covariates in the same sequence (auxiliary variables); they
inform the other covariates, and y only through them.

One iteration draws, in turn, every model's parameters given the completed data
(``mlmi.impute.multilevel_models``: for a probit its latent normals first; beta with the random effects
integrated out, then the u_j of all clusters, then Psi, then an interweaving redraw of (u, Psi)
through u_j = L xi_j, then sigma^2), the missing y from the analysis model, and every variable's
missing cells from its full conditional, its own model times every model it enters
(``mlmi.impute.multilevel_cells``; exact normal or two-point draws). The imputation is the state after
the last of ``burn_in`` iterations; each imputation is its own chain with its own seed.

Priors: flat on beta and alpha. In the analysis model, ``jomo.lmer``'s own (2.7-4's R code): Psi ~
IW(q, Psi_cc) and sigma^2 ~ IW(1, sigma^2_cc), the scales from an REML fit to the complete cases
(``complete_case_priors``; 0.1 s on hsb), with jomo's fallback to I_q for a singular Psi_cc. The prior
matters more than its q degrees of freedom suggest: at 60 schools, the identity scale (jomo's
``l2cov.prior`` default for its covariate models) put the ses-slope SD 5% (MAR) and 11% (MCAR) above the
truth in the acceptance study, the complete-case scale 0.1% and 4.6% (MCSE 4; jomo.lmer 1.1% and 2.3%;
README, "Against R's multilevel imputations"). In the covariate models tau^2 and omega^2 ~ IW(1, s^2),
s^2 the observed variance of the covariate (jomo's identity prior, on the covariate's own scale), and
tau^2 ~ IW(1, 1) on a probit's unit latent scale.

Burn-in and diagnostics: on the default hsb-size problem (``benchmarks/multilevel_speed.py``'s data:
160 schools, 7,223 students, 30% of ses missing at random on mathach), 4 chains from their seeded,
dispersed starts are in their stationary range within about 50 iterations (their means over blocks
of 50 iterations do not drift). ``chain_diagnostics`` over the second halves (chains of seeds 1-4)
gives, at burn_in = 1000, rank-normalised split R-hat <= 1.008 for every parameter and bulk ESS from
192 (``sd__ses``, the slowest) to 419 of the 400 kept draws; at burn_in = 500, R-hat 1.019 for
``sd__ses`` (the rest <= 1.008) and its bulk ESS 123. Hence ``DEFAULT_BURN_IN`` = 1000, jomo's default
``nburn`` too. Without the blocked draw of
beta and the interweaving step, ``sd__ses`` had a bulk ESS of 15 in 300 draws.

Supported formulas: every fixed-effect column must be affine in the one imputed variable it
depends on (``ses``, ``I(2 * ses)``, ``ses:female`` with ``female`` observed, a binary
``minority``, a two-level text factor, a passive cluster mean), or a product of two imputed
variables (``ses:minority``), so that each cell's full conditional stays exactly normal or
two-point. Refused with a message naming the column: terms nonlinear in an imputed variable
(``I(ses^2)``, ``log(ses)``), products of three, and a variable times its own passive cluster
mean; these need a Metropolis-Hastings step the sampler does not have. Random slopes must be
numeric columns. Imputed categorical variables must have two levels.

References
----------
Albert, J. H. & Chib, S. (1993). JASA 88, 669-679.
Bartlett, J. W., Seaman, S. R., White, I. R. & Carpenter, J. R. (2015). SMMR 24, 462-487.
Enders, C. K., Du, H. & Keller, B. T. (2020). Psych. Methods 25, 88-112.
Erler, N. S. et al. (2016). Stat Med 35, 2955-2974.
Goldstein, H., Carpenter, J. R. & Browne, W. J. (2014). JRSS A 177, 553-564.
Quartagno, M., Grund, S. & Carpenter, J. (2019). jomo: a flexible package for two-level joint
modelling multiple imputation. R Journal 11(2), 205-228.
"""
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlmi.data.levels import fill_within_clusters, level2_columns
from mlmi.fit.deviance import lambda_of
from mlmi.fit.formula import MixedFormula, fixed_design, parse_formula
from mlmi.fit.lmer import complete_cases, fit_mixed
from mlmi.impute.miceforest import CHAIN_COLUMNS, is_text
from mlmi.impute.multilevel_cells import Link, Variable, batches_of, update_variable
from mlmi.impute.multilevel_models import Clusters, Model, Term

TRACE_COLUMNS = ["iteration", "parameter", "value"]
DIAGNOSTIC_COLUMNS = ["parameter", "rhat", "ess_bulk", "ess_tail"]
#: Gibbs iterations of one chain unless told otherwise (jomo.lmer's default nburn; module docstring).
DEFAULT_BURN_IN = 1000
#: The chains and the trace keep about this many iterations: every ceil(burn_in / KEPT)-th, and the last.
KEPT = 200
#: Relative tolerance of the check that a design column is affine in an imputed variable.
AFFINE_TOL = 1e-9


def impute_multilevel(data: pd.DataFrame, formula: str, *, seed: int, burn_in: int, level2=(), cluster_means=None,
                      exclude=(), categorical=()) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (completed copy of data — same rows, order, columns, dtypes; chains; trace).

    Parameters
    ----------
    data : DataFrame
        The incomplete data; never modified.
    formula : str
        The analysis model in lme4 syntax with one ``(terms | group)`` part, e.g.
        ``mathach ~ minority + female + ses + meanses + (1 + ses | schid)``.
    seed : int
        The chain's seed: ``numpy.random.default_rng(seed)`` is its only randomness.
    burn_in : int
        Gibbs iterations; the imputation is the state after the last one.
    level2 : sequence of str
        Columns constant within clusters, imputed once per cluster (a missing cell first takes
        its cluster's observed value, ``levels.fill_within_clusters``).
    cluster_means : dict of str to str, optional
        Mean column -> level-1 column; every cell of the mean column is recomputed from the
        current values of its level-1 column after each draw of it (passive imputation).
        An observed cluster mean belongs in the formula as a plain column instead.
    exclude : sequence of str
        Columns carried through untouched and used nowhere (none of the formula's, but the grouping
        column may be listed).
    categorical : sequence of str
        Columns imputed as categories (text columns always are); two levels each.

    Returns
    -------
    completed : DataFrame
        Observed cells as they were; an imputed integer column is rounded to whole numbers
        and a category is one of its column's observed levels.
    chains : DataFrame
        ``iteration, variable, mean, sd``: mean and SD of each imputed variable's imputed cells
        (categories by their level number), at iteration 0 (the start) and at every
        ceil(burn_in / 200)-th iteration and the last.
    trace : DataFrame
        ``iteration, parameter, value``: the analysis model's parameters at the same iterations
        from 1, named as broom.mixed names them (``(Intercept)``, ``sd__(Intercept)``,
        ``cor__(Intercept).ses``, ``sd__Observation``).
    """
    spec = parse_formula(formula)
    means = dict(cluster_means or {})
    _check(data, spec, level2, means, exclude, categorical, burn_in)
    rng = np.random.default_rng(seed)
    with threadpool_limits(limits=1):
        sampler = _build(data, spec, list(level2), means, list(exclude), list(categorical), rng)
        chains, trace = sampler.run(rng, burn_in)
    return sampler.completed(), chains, trace


def _check(data: pd.DataFrame, spec: MixedFormula, level2, means: dict, exclude, categorical, burn_in) -> None:
    """Fail early, naming the argument, on anything the sampler cannot take."""
    for key, columns in [("level2", level2), ("cluster_means", [*means, *means.values()]), ("exclude", exclude),
                         ("categorical", categorical)]:
        absent = [c for c in columns if c not in data.columns]
        if absent:
            raise ValueError(f"{key} lists columns {absent} that the data does not have (columns: {list(data.columns)})")
    absent = [c for c in [spec.response, spec.group, *spec.random_terms] if c not in data.columns]
    if absent:
        raise ValueError(f"formula {spec.text!r} uses columns {absent} that the data does not have")
    if not isinstance(burn_in, int | np.integer) or burn_in < 1:
        raise ValueError(f"burn_in must be a positive whole number of iterations, got {burn_in!r}")
    if data[spec.group].isna().any():
        raise ValueError(f"grouping column {spec.group!r} has missing values; every row needs its cluster")
    if is_text(data[spec.response]) or spec.response in categorical:
        raise ValueError(f"response {spec.response!r} must be numeric: the analysis model is a linear mixed model")
    varying = [c for c in level2 if (data.groupby(spec.group)[c].nunique() > 1).any()]
    if varying:
        raise ValueError(f"level2 lists {varying}, whose observed values differ within some {spec.group!r} cluster")
    used = set(spec.variables(data.columns)) - {spec.group}  # the grouping column is never a predictor anyway
    clash = sorted(used & set(exclude))
    if clash:
        raise ValueError(f"exclude lists {clash}, which the formula uses; the analysis model needs every column of "
                         "its formula")
    for slope in spec.random_terms:
        if is_text(data[slope]) or slope in categorical:
            raise ValueError(f"random slope {slope!r} must be a numeric column")


@dataclass(eq=False)
class Sampler:
    """The chain's state: current values of every column (rows sorted by cluster), the models with
    their parameters, and the imputed variables in their order."""

    data: pd.DataFrame
    order: np.ndarray
    clusters: Clusters
    values: dict
    levels: dict
    holes: dict
    analysis: Model
    fixed_names: list[str]
    re_names: list[str]
    models: list[Model]
    variables: list[Variable]
    level2_rows: dict
    passive: list[str]

    def run(self, rng: np.random.Generator, burn_in: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``burn_in`` Gibbs iterations; the chains (from iteration 0) and the trace, thinned alike."""
        thin = math.ceil(burn_in / KEPT)
        chains, trace = self._chain_rows(0), []
        for iteration in range(1, burn_in + 1):
            self.step(rng)
            if iteration % thin == 0 or iteration == burn_in:
                chains += self._chain_rows(iteration)
                trace += self._trace_rows(iteration)
        return pd.DataFrame(chains, columns=CHAIN_COLUMNS), pd.DataFrame(trace, columns=TRACE_COLUMNS)

    def step(self, rng: np.random.Generator) -> None:
        """One Gibbs iteration: every model's parameters, the missing y, then each variable's missing cells."""
        for model in self.models:
            model.update(rng, self.values, self.clusters)
        self._draw_response(rng)
        for variable in self.variables:
            update_variable(rng, variable, self.values, self.clusters, self.level2_rows.get(variable.name))

    def _draw_response(self, rng: np.random.Generator) -> None:
        """Missing y ~ N(x' beta + z' u_j, sigma^2) from the analysis model."""
        holes = self.holes.get(self.analysis.response)
        if holes is None:
            return
        X, Z = self.analysis.design(self.values, self.clusters)
        eta = self.analysis.eta(X, Z, self.clusters)[holes]
        self.values[self.analysis.response][holes] = eta + np.sqrt(self.analysis.sigma2) * rng.standard_normal(len(eta))

    def _chain_rows(self, iteration: int) -> list[tuple]:
        """(iteration, variable, mean, sd) of each imputed column's imputed cells."""
        rows = []
        for column, holes in self.holes.items():
            imputed = self.values[column][holes]
            rows.append((iteration, column, imputed.mean(), imputed.std(ddof=1) if len(imputed) > 1 else np.nan))
        return rows

    def _trace_rows(self, iteration: int) -> list[tuple]:
        """(iteration, parameter, value) of the analysis model, in broom.mixed's names."""
        model = self.analysis
        sd = np.sqrt(np.diag(model.psi))
        rows = [(iteration, name, value) for name, value in zip(self.fixed_names, model.coef.tolist())]
        rows += [(iteration, f"sd__{name}", value) for name, value in zip(self.re_names, sd.tolist())]
        rows += [(iteration, f"cor__{self.re_names[i]}.{self.re_names[j]}", model.psi[i, j] / (sd[i] * sd[j]))
                 for i in range(len(sd)) for j in range(i + 1, len(sd))]
        rows.append((iteration, "sd__Observation", math.sqrt(model.sigma2)))
        return rows

    def completed(self) -> pd.DataFrame:
        """The data with the current values in its missing cells and in every cell of a passive cluster mean,
        in the user's row order and dtypes."""
        result = self.data.copy()
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        for column in [*self.holes, *(m for m in self.passive if m not in self.holes)]:
            values = self.values[column][inverse]
            if column in self.levels:
                values = np.asarray(self.levels[column], dtype=object)[values.astype(int)]
            elif pd.api.types.is_integer_dtype(self.data[column]):
                values = np.rint(values)
            result[column] = values
        return result.astype(self.data.dtypes.to_dict())


def _layout(groups: pd.Series) -> tuple[np.ndarray, Clusters]:
    """The permutation that sorts rows by cluster (stably), and the sorted rows' cluster layout."""
    _, index = np.unique(groups.to_numpy(), return_inverse=True)
    order = np.argsort(index, kind="stable")
    return order, Clusters.of(index[order])


def _levels(column: pd.Series) -> list:
    """A category's observed levels in sorted order (R's factor order; code k is the k-th)."""
    return sorted(column.dropna().unique().tolist())


def _numbers(column: pd.Series, levels: list | None) -> np.ndarray:
    """A column as floats: category codes for a category, NaN where missing."""
    if levels is None:
        return np.array(column.to_numpy(dtype=float, na_value=np.nan))  # a writable copy
    codes = pd.Index(levels).get_indexer(column.to_numpy(dtype=object)).astype(float)
    codes[column.isna().to_numpy()] = np.nan
    return codes


def _start(values: dict, column: str, level: int, clusters: Clusters, rng: np.random.Generator) -> None:
    """Fill a column's missing cells with draws from its observed values: per row, or per cluster at level 2."""
    current = values[column] if level == 1 else values[column][clusters.starts]
    holes = np.isnan(current)
    if holes.all():
        raise ValueError(f"column {column!r} has no observed value to start from")
    current[holes] = rng.choice(current[~holes], holes.sum())
    values[column] = current if level == 1 else current[clusters.index]


def _sources(columns: list[str], values: dict, levels: dict) -> list[str]:
    """Numeric sources of fully observed predictor columns: numbers and two-level codes as they are, a
    category of K > 2 levels as K - 1 indicators (named ``column[level]``, added to ``values``)."""
    found = []
    for column in columns:
        count = len(levels.get(column, (0, 1)))
        if count <= 2:
            found += [column] if count == 2 else []
            continue
        for k, level in enumerate(levels[column][1:], start=1):
            name = f"{column}[{level}]"
            values[name] = (values[column] == k).astype(float)
            found.append(name)
    return found


def _mean_name(column: str) -> str:
    """The internal source holding the cluster means of a level-1 column."""
    return f"mean({column})"


def _build(data: pd.DataFrame, spec: MixedFormula, level2: list, means: dict, exclude: list, categorical: list,
           rng: np.random.Generator) -> Sampler:
    """The sampler's start: columns coded as numbers with seeded starting values, models, variables in order."""
    order, clusters = _layout(data[spec.group])
    frame = fill_within_clusters(data.iloc[order].reset_index(drop=True), spec.group, level2)
    columns = [c for c in data.columns if c not in exclude and c != spec.group]
    levels = {c: _levels(frame[c]) for c in columns if c in categorical or is_text(frame[c])}
    values = {c: _numbers(frame[c], levels.get(c)) for c in columns}
    missing = {c: np.isnan(values[c]) for c in columns}
    imputed2, imputed1 = _imputed(columns, missing, levels, level2, means, spec.response)
    for column in imputed2:
        _start(values, column, 2, clusters, rng)
    for column in imputed1 + ([spec.response] if missing[spec.response].any() else []):
        _start(values, column, 1, clusters, rng)
    for mean_column, column in means.items():
        values[mean_column] = clusters.spread(clusters.mean(values[column]))
    observed1, observed2 = _observed(frame, spec, columns, missing, level2, means, values, levels)
    for source in observed1 + imputed1:
        values[_mean_name(source)] = clusters.spread(clusters.mean(values[source]))

    mean_sources = {c: [_mean_name(c)] + [m for m, v in means.items() if v == c] for c in imputed1}
    changing = set(imputed1 + imputed2).union(*mean_sources.values())
    models = _covariate_models(imputed2, imputed1, observed1, observed2, levels, values, clusters, changing)
    used = spec.variables(data.columns)
    quantities = {c: levels.get(c) for c in imputed1 + imputed2 if c in used}
    quantities.update({m: None for m, c in means.items() if missing[c].any() and m in used})
    fixed_names, analysis = _analysis_model(spec, frame, values, levels, quantities, clusters, changing)
    models.append(analysis)

    own = {model.response: model for model in models}
    variables = [_variable(c, 2, c in levels, np.flatnonzero(missing[c][clusters.starts]), own[c], models, [],
                           clusters) for c in imputed2]
    variables += [_variable(c, 1, c in levels, np.flatnonzero(missing[c]), own[c], models, mean_sources[c], clusters)
                  for c in imputed1]
    level2_rows = {v.name: np.flatnonzero(np.isin(clusters.index, v.cells)) for v in variables if v.level == 2}
    holes = {c: np.flatnonzero(data[c].isna().to_numpy()[order]) for c in columns if data[c].isna().any()}
    return Sampler(data, order, clusters, values, levels, holes, analysis, fixed_names, spec.re_names, models,
                   variables, level2_rows, list(means))


def _imputed(columns: list[str], missing: dict, levels: dict, level2: list, means: dict,
             response: str) -> tuple[list[str], list[str]]:
    """The incomplete level-2 and level-1 covariates (passive means and the response aside), each in the
    order of the sequence: fewest missing first (ties in column order)."""
    incomplete = [c for c in columns if c not in means and c != response and missing[c].any()]
    for column in incomplete:
        if column in levels and len(levels[column]) != 2:
            raise ValueError(f"categorical column {column!r} has {len(levels[column])} levels; the multilevel "
                             "imputation takes categories of two levels (binary) only")
    by_count = sorted(incomplete, key=lambda c: missing[c].sum())
    return [c for c in by_count if c in level2], [c for c in by_count if c not in level2]


def _observed(frame: pd.DataFrame, spec: MixedFormula, columns: list[str], missing: dict, level2: list, means: dict,
              values: dict, levels: dict) -> tuple[list[str], list[str]]:
    """Sources of the fully observed predictors (the response and passive means aside): level 1, and level 2
    (listed in ``level2``, found constant within clusters, or the mean of a fully observed column)."""
    complete = [c for c in columns if c != spec.response and c not in means and not missing[c].any()]
    found = set(level2) | set(level2_columns(frame, spec.group, complete))
    observed2 = _sources([c for c in complete if c in found], values, levels)
    observed2 += [m for m, c in means.items() if not missing[c].any()]
    return _sources([c for c in complete if c not in found], values, levels), observed2


def _covariate_models(imputed2: list[str], imputed1: list[str], observed1: list[str], observed2: list[str],
                      levels: dict, values: dict, clusters: Clusters, changing: set) -> list[Model]:
    """Each covariate's own model, in the sequence's order: a level-2 one on the observed level-2 columns,
    the level-2 covariates before it and the cluster means of the observed level-1 columns; a level-1 one on
    every observed column, every level-2 covariate, the level-1 covariates before it, and the cluster means
    of the level-1 ones among them."""
    observed_means = [_mean_name(s) for s in observed1]
    models = [_covariate_model(c, 2, c in levels, observed2 + imputed2[:k] + observed_means, values, clusters,
                               changing) for k, c in enumerate(imputed2)]
    for k, column in enumerate(imputed1):
        predictors = (observed1 + observed2 + imputed2 + imputed1[:k] + observed_means
                      + [_mean_name(c) for c in imputed1[:k]])
        models.append(_covariate_model(column, 1, column in levels, predictors, values, clusters, changing))
    return models


def _covariate_model(column: str, level: int, binary: bool, predictors: list[str], values: dict,
                     clusters: Clusters, changing: set) -> Model:
    """A covariate's own model on a constant and ``predictors`` (those adding nothing to the others'
    span left out): normal or probit, with a random intercept at level 1."""
    rows = slice(None) if level == 1 else clusters.starts
    count = len(clusters.index) if level == 1 else clusters.count
    terms = [Term(1.0, 0.0)] + [_term(s, values, rows, changing) for s in predictors]
    terms = _independent(terms, values, rows, count)
    scale = 1.0 if binary else float(np.var(values[column][rows], ddof=1))
    random = [Term(1.0, 0.0)] if level == 1 else []
    return Model(column, level, binary, terms, random, (1.0, np.array([[scale]])), (1.0, scale),
                 np.zeros(len(terms)), np.zeros((clusters.count, len(random))), np.array([[scale]]), scale)


def _term(source: str, values: dict, rows, changing: set) -> Term:
    """A predictor column: one that imputation changes, or its fixed values at ``rows``."""
    return Term(0.0, 1.0, (source,)) if source in changing else Term(values[source][rows].copy(), 0.0)


def _independent(terms: list[Term], values: dict, rows, count: int) -> list[Term]:
    """The terms, in order, whose column (at ``count`` rows) is not numerically in the span of those kept before it."""
    kept, basis = [], np.zeros((count, 0))
    for term in terms:
        column = term.column(values, rows, count).astype(float)
        residual = column - basis @ (basis.T @ column)
        norm = np.linalg.norm(residual)
        if norm > 1e-8 * max(np.linalg.norm(column), 1.0):
            kept.append(term)
            basis = np.column_stack([basis, residual / norm])
    return kept


def _analysis_model(spec: MixedFormula, frame: pd.DataFrame, values: dict, levels: dict, quantities: dict,
                    clusters: Clusters, changing: set) -> tuple[list[str], Model]:
    """The analysis model: X's columns as affine functions of the imputed variable each depends on, Z's
    columns, flat prior on beta, and jomo.lmer's priors from the complete cases (``complete_case_priors``);
    the chain's Psi starts at the prior's scale."""
    current = _formula_frame(spec, frame, values, levels)
    names, terms = _formula_terms(spec, current, quantities)
    random = ([Term(1.0, 0.0)] if spec.random_intercept else []) + [
        _term(s, values, slice(None), changing) for s in spec.random_terms]
    if len(_independent(terms, values, slice(None), len(clusters.index))) < len(terms):
        raise ValueError(f"formula {spec.text!r}: the fixed-effect columns are collinear on these data")
    psi_prior, sigma_prior = complete_case_priors(frame, spec, len(random))
    scale = float(np.var(values[spec.response], ddof=1))
    return names, Model(spec.response, 1, False, terms, random, psi_prior, sigma_prior,
                        np.zeros(len(terms)), np.zeros((clusters.count, len(random))), psi_prior[1].copy(), scale)


def complete_case_priors(frame: pd.DataFrame, spec: MixedFormula, q: int) -> tuple[tuple, tuple]:
    """jomo.lmer's priors (2.7-4's R code): Psi ~ IW(q, Psi_cc) and sigma^2 ~ IW(1, sigma^2_cc), the scales
    from an REML fit of the analysis model to the complete cases. As jomo does, Psi's scale falls back to
    I_q when Psi_cc's condition number exceeds 1e8 (a singular fit); both fall back to (I_q, Jeffreys'
    p(sigma^2) ∝ 1/sigma^2) when the complete cases cannot be fitted at all (too few of them)."""
    fallback = ((float(q), np.eye(q)), (0.0, 0.0))
    try:
        record = fit_mixed(complete_cases(frame, spec.text), spec.text)
    except ValueError:
        return fallback
    sigma2 = record["sigma"] ** 2
    factor = lambda_of(np.asarray(record["theta"]), q)
    psi = sigma2 * factor @ factor.T
    if not np.isfinite(psi).all() or np.linalg.cond(psi) > 1e8:
        return fallback[0], (1.0, sigma2)
    return (float(q), psi), (1.0, sigma2)


def _formula_frame(spec: MixedFormula, frame: pd.DataFrame, values: dict, levels: dict) -> pd.DataFrame:
    """The formula's columns with the current values, categories as their level labels (sorted rows)."""
    current = {}
    for column in spec.variables(frame.columns):
        if column == spec.group:
            continue
        if column in levels:
            current[column] = np.asarray(levels[column], dtype=object)[values[column].astype(int)]
            if not is_text(frame[column]):
                current[column] = current[column].astype(float)
        else:
            current[column] = values[column]
    return pd.DataFrame(current)


def _formula_terms(spec: MixedFormula, current: pd.DataFrame, quantities: dict) -> tuple[list[str], list[Term]]:
    """Each fixed-effect column as ``Term(a, b, sources)``: a + b q for the one imputed quantity q it
    depends on, or a + b q1 q2 for a product of two (``ses:minority`` with both imputed).

    The design is built on the current values and again with each quantity set, in every row, to
    probe values (1, 2, 3 for a number; its two levels for a category, coded 0 and 1): a column that
    moves with the quantity depends on it, and X(3) - 2 X(2) + X(1) = 0 shows it affine. A column
    that moves with two is built on the grid of both quantities' probes and must equal a + b q1 q2
    at every point. Everything is built in stacked frames so that factor levels see the data.
    """
    probes = {q: (list(levels) if levels is not None else [1.0, 2.0, 3.0]) for q, levels in quantities.items()}
    codes = {q: np.arange(len(points), dtype=float) if quantities[q] is not None else np.array(points)
             for q, points in probes.items()}
    settings = [{q: p} for q in quantities for p in probes[q]]
    names, blocks = _probe(spec, current, settings)
    base, terms, owners = blocks.pop(0), {}, {}
    for q, points in probes.items():
        X = np.stack([blocks.pop(0) for _ in points])
        for c in np.flatnonzero(np.any(X != X[:1], axis=(0, 1))):
            owners.setdefault(c, []).append(q)
            terms[c] = _affine(spec, names[c], X[:, :, c], codes[q], (q,))
    pairs = {c: found for c, found in owners.items() if len(found) > 1}
    for c, found in pairs.items():
        if len(found) > 2:
            raise ValueError(f"formula {spec.text!r}: column {names[c]!r} depends on the imputed variables {found}; "
                             "the multilevel imputation takes a column of one imputed variable or a product of two")
        first, second = found
        settings = [{first: p, second: r} for p in probes[first] for r in probes[second]]
        X = np.stack(_probe(spec, current, settings)[1][1:])[:, :, c]
        grid = np.multiply.outer(codes[first], codes[second]).ravel()
        terms[c] = _affine(spec, names[c], X, grid, (first, second))
    return names, [terms.get(c, Term(_scalar(base[:, c]), 0.0)) for c in range(base.shape[1])]


def _probe(spec: MixedFormula, current: pd.DataFrame, settings: list[dict]) -> tuple[list[str], list[np.ndarray]]:
    """The fixed-effect design on the current values, then with each setting's quantities set in every row."""
    n = len(current)
    frames = [current] + [current.assign(**{q: pd.Series([p] * n, dtype=current[q].dtype) for q, p in s.items()})
                          for s in settings]
    design = fixed_design(spec.fixed, pd.concat(frames, ignore_index=True))
    return design.names, np.split(design.X, len(frames))


def _affine(spec: MixedFormula, name: str, X: np.ndarray, at: np.ndarray, sources: tuple) -> Term:
    """``Term(a, b, sources)`` with X[k] = a + b at[k] for every probe k (rows of X; least squares, then
    checked at every probe), or a ValueError."""
    centred = at - at.mean()
    slope = centred @ X / (centred @ centred)
    intercept = X.mean(axis=0) - slope * at.mean()
    if np.max(np.abs(X - intercept - np.multiply.outer(at, slope))) > AFFINE_TOL * (1 + np.max(np.abs(X))):
        what = " * ".join(sources)
        raise ValueError(f"formula {spec.text!r}: column {name!r} is not linear in the imputed {what!r}; the "
                         "multilevel imputation takes columns linear in each imputed variable (or a product of two)")
    return Term(_scalar(intercept), _scalar(slope), sources)


def _scalar(column: np.ndarray) -> np.ndarray | float:
    """A column that is the same in every row as that one number (cheaper to use), else the column."""
    return float(column[0]) if np.all(column == column[0]) else column


def _variable(column: str, level: int, binary: bool, cells: np.ndarray, own: Model, models: list[Model],
              mean_sources: list[str], clusters: Clusters) -> Variable:
    """An imputed variable with the models it enters and its batches of cells drawn together."""
    means = set(mean_sources)
    links = []
    for model in models:
        if any(column in t.sources and means & set(t.sources) for t in model.terms):
            raise ValueError(f"a design column is a product of {column!r} and a cluster mean of it, which is not "
                             "linear in a single cell; the multilevel imputation cannot take it")
        if model is own:
            continue
        link = Link(model, column, tuple(mean_sources),
                    tuple(i for i, t in enumerate(model.terms) if column in t.sources),
                    tuple(i for i, t in enumerate(model.terms) if means & set(t.sources)),
                    tuple(i for i, t in enumerate(model.random) if column in t.sources))
        if link.direct or link.means or link.random:
            links.append(link)
    coupled = level == 1 and any(link.means for link in links)
    variable = Variable(column, level, binary, cells, own, links, mean_sources)
    variable.batches = batches_of(cells, clusters, coupled)
    return variable


def chain_diagnostics(traces: list[pd.DataFrame]) -> pd.DataFrame:
    """Rank-normalised split R-hat and bulk and tail ESS of each parameter over m chains (Vehtari et al. 2021).

    Each chain is one imputation's ``trace`` (``impute_multilevel``); the second half of its kept
    iterations is taken as draws from the stationary distribution, and ArviZ computes
    ``rhat(method="rank")``, ``ess(method="bulk")`` and ``ess(method="tail")`` on the (m, draws)
    array. R-hat below 1.01 and an ESS of a few hundred are the usual marks of a chain that has
    converged and mixed (Vehtari et al. 2021).

    Returns
    -------
    DataFrame
        ``parameter, rhat, ess_bulk, ess_tail``, in the traces' parameter order.

    References
    ----------
    Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. & Bürkner, P.-C. (2021). Rank-normalization,
    folding, and localization: an improved R-hat for assessing convergence of MCMC. Bayesian Analysis 16, 667-718.
    """
    if len(traces) < 2:
        raise ValueError(f"R-hat compares chains: give at least 2 traces, got {len(traces)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz 0.23 announces its refactor on import
        import arviz
    wide = [trace.pivot(index="iteration", columns="parameter", values="value") for trace in traces]
    lengths = {len(w) for w in wide}
    if len(lengths) != 1:
        raise ValueError(f"the traces have different numbers of kept iterations {sorted(lengths)}; run every chain "
                         "with the same burn_in")
    rows = []
    for parameter in traces[0]["parameter"].drop_duplicates():
        draws = np.stack([w[parameter].to_numpy()[len(w) // 2:] for w in wide])
        rows.append((parameter, float(arviz.rhat(draws, method="rank")), float(arviz.ess(draws, method="bulk")),
                     float(arviz.ess(draws, method="tail"))))
    return pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS)
