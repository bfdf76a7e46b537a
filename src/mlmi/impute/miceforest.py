"""Imputed data sets: miceforest here, or the multilevel sampler of ``mlmi.impute.multilevel``; reproducible
whatever the number of threads.

Like Amelia's ``idvars``, ``exclude`` columns are carried through but neither imputed nor
used as predictors; like its ``noms``, ``categorical`` columns are imputed as categories. Numeric
columns are imputed by predictive mean matching (``MEAN_MATCH``): each imputed value is an observed
one, so 0/1 outcomes and covariates stay 0/1 and counts stay whole and non-negative.
Columns of text (``"girl"``/``"boy"``) are categories whatever the lists say: an imputed
category is always one of the levels observed in its column.

Multilevel data (design §9) with miceforest: a level-2 column is filled from its cluster's own
observed value, and a cluster with none gets one value drawn from a cluster-level model (one
row per cluster); a declared cluster-mean column is recomputed from its imputed level-1 column
(passive imputation). Optionally the cluster means of the level-1 columns predict (added
columns, not in the output), and each imputation's models are trained on a bootstrap sample of
whole clusters (as Amelia's EMB bootstraps rows), so that the imputations differ by the models'
uncertainty too ("proper" imputation).
"""
import sys

import numpy as np
import pandas as pd

from mlmi.data.levels import cluster_means as recompute_cluster_means
from mlmi.data.levels import fill_within_clusters

CHAIN_COLUMNS = ["iteration", "variable", "mean", "sd"]
TRACE_COLUMNS = ["iteration", "parameter", "value"]
#: Name prefix of the cluster-mean predictor columns added for miceforest (never in the output).
MEAN_PREFIX = "cluster_mean__"
#: miceforest's predictive mean matching (its "normal" strategy, and its default 5 candidates, stated here because
#: mlmi relies on them): a numeric column's imputed value is the observed value of one of the 5 rows whose
#: predictions lie nearest the missing cell's. Every imputed value is thus one seen in its column: a 0/1 column
#: stays 0/1 and a count a whole non-negative number. With 0 candidates miceforest would impute the raw
#: prediction (0.37 for a 0/1 outcome).
MEAN_MATCH = {"mean_match_strategy": "normal", "mean_match_candidates": 5}


#: The size of miceforest's random forests: its own (48 trees of up to 128 leaves, on LightGBM's 255 bins per
#: predictor). Smaller forests cost up to 40% less CPU per imputation but shift the pooled estimates by more
#: than their Monte Carlo SEs (16 trees on 63 bins: ses -3% relative, the SD of its slope +10%), so they are
#: not the default (docs/imputation-speed.md; benchmarks/miceforest_variants.py --forests).
FOREST: dict = {}


def lightgbm_parameters(threads: int) -> dict:
    """LightGBM settings of every miceforest model: the forest's size (FOREST) and settings that make a tree
    independent of the number of threads."""
    return {**FOREST, "num_threads": threads, "deterministic": True, "force_row_wise": True}


def impute(method: str, data: pd.DataFrame, formula: str, *, seed: int, threads: int = 1,
           **settings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One imputed data set by ``method``: (completed data, chains, trace).

    ``settings`` are ``mlmi.impute.models.method_settings`` of the config. ``multilevel`` is the sampler of
    ``mlmi.impute.multilevel``, which draws the imputation model's parameters (its trace has one row per
    iteration and parameter); ``miceforest`` is ``impute_miceforest`` with the model's outer grouping column
    as its clusters and its other grouping factors beside them, whose trace is empty (it draws no parameters).
    """
    if method == "multilevel":
        from mlmi.impute.multilevel import impute_multilevel

        return impute_multilevel(data, formula, seed=seed, **settings)
    from mlmi.fit.formula import parse_formula

    parsed = parse_formula(formula)
    others = [factor for factor in parsed.grouping_factors if factor != (parsed.outer_group,)]
    completed, chains = impute_miceforest(data, parsed.outer_group, seed=seed, threads=threads, other_groups=others,
                                          **settings)
    return completed, chains, pd.DataFrame(columns=TRACE_COLUMNS)


def impute_miceforest(data: pd.DataFrame, group: str, *, seed: int, iterations: int, exclude=(), categorical=(),
                      level2=(), cluster_means=None, bootstrap: bool = False, cluster_predictors: bool = False,
                      other_groups=(), threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A completed copy of two-level ``data`` (same rows, order, columns and dtypes) and its chains.

    1. Level 2: each ``level2`` column takes its cluster's observed value; the clusters with none
       are imputed on a cluster-level table (one row per cluster: the level-2 columns and the
       cluster means of the observed level-1 values), and their value is given to every row.
    2. Level 1: ``impute_once`` on the rest, with the cluster means of the level-1 columns as
       predictors when ``cluster_predictors`` (the means in each cluster of ``group``, then in each
       cluster of every one of ``other_groups``).
    3. Each ``cluster_means`` column (mean column -> level-1 column) is recomputed as the cluster
       mean of its imputed level-1 column.

    With ``bootstrap`` both models are trained on a bootstrap sample of whole clusters. The chains
    of step 1 summarise the imputed cluster values, those of step 2 the imputed cells.

    Parameters
    ----------
    group : str
        The grouping column of the clusters (the model's random-effects group; of several, the outer one).
    other_groups : sequence of tuples of str
        The model's other grouping factors, each as the columns whose combinations it is (``("class",
        "school")`` for ``(1 | school/class)``'s class): never imputed, their cluster means predict.
    level2 : sequence of str
        Columns constant within every cluster (``mlmi.data.levels.level2_columns``).
    cluster_means : dict of str to str, optional
        Passive cluster-mean columns and the level-1 column each is the mean of.
    bootstrap, cluster_predictors : bool
        Train on a bootstrap sample of clusters; add cluster means as predictors.
    seed, iterations, exclude, categorical, threads
        As for ``impute_once``.
    """
    means = dict(cluster_means or {})
    for key, columns in (("exclude", exclude), ("categorical", categorical), ("level2", level2),
                         ("cluster_means", [*means, *means.values()])):
        _check_listed_columns(data, f"imputation.{key}", columns)
    ids = {group, *(column for factor in other_groups for column in factor)}
    level1 = [c for c in data.columns if c not in {*ids, *exclude, *level2, *means} and not is_text(data[c])]
    level2_seed, level1_seed = np.random.SeedSequence(seed).generate_state(2)
    filled, level2_chains = _impute_level2(fill_within_clusters(data, group, level2), group, level2, level1,
                                           seed=int(level2_seed), iterations=iterations, categorical=categorical,
                                           bootstrap=bootstrap, threads=threads)
    completed, chains = impute_once(
        filled, seed=int(level1_seed), iterations=iterations, exclude=exclude, categorical=categorical,
        threads=threads, clusters=filled[group] if bootstrap else None,
        predictors=_cluster_predictors(filled, group, other_groups, level1) if cluster_predictors else None)
    return recompute_cluster_means(completed, group, means), pd.concat([level2_chains, chains], ignore_index=True)


def _cluster_predictors(data: pd.DataFrame, group: str, other_groups, columns) -> pd.DataFrame:
    """Per row of ``data``: the means of the observed values of ``columns`` in its cluster of ``group`` (named
    with MEAN_PREFIX), then in its cluster of each of ``other_groups`` (MEAN_PREFIX, the factor's number from
    2, ``__``), as predictors."""
    means = [_observed_means(data, group, columns).loc[data[group]].set_axis(data.index)]
    for number, factor in enumerate(other_groups, start=2):
        within = data.groupby(list(factor), sort=False)[list(columns)].transform("mean").astype(float)
        means.append(within.add_prefix(f"{MEAN_PREFIX}{number}__"))
    return pd.concat(means, axis=1)


def _observed_means(data: pd.DataFrame, group: str, columns) -> pd.DataFrame:
    """One row per cluster: the mean of the observed values of each of ``columns`` (missing where none is),
    named with MEAN_PREFIX, as predictors."""
    return data.groupby(group, sort=False)[list(columns)].mean().astype(float).add_prefix(MEAN_PREFIX)


def _impute_level2(data: pd.DataFrame, group: str, level2, level1, *, seed: int, iterations: int, categorical,
                   bootstrap: bool, threads: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``data`` with the level-2 columns of the clusters that have no observed value imputed once per
    cluster, from a table of one row per cluster; and the chains of that imputation."""
    holes = [c for c in level2 if data[c].isna().any()]
    if not holes:
        return data, pd.DataFrame(columns=CHAIN_COLUMNS)
    table = data.groupby(group, sort=False)[list(level2)].first().join(_observed_means(data, group, level1))
    completed, chains = impute_once(table, seed=seed, iterations=iterations,
                                    categorical=[c for c in categorical if c in level2], threads=threads, targets=holes,
                                    clusters=table.index.to_series() if bootstrap else None)
    result = data.copy()
    for column in holes:
        result[column] = result[column].fillna(result[group].map(completed[column]))
    return result, chains


def impute_once(data: pd.DataFrame, *, seed: int, iterations: int, exclude=(), categorical=(), threads: int = 1,
                targets=None, predictors: pd.DataFrame | None = None,
                clusters: pd.Series | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a completed copy of ``data`` (same rows, order, columns and dtypes) and its chains.

    The chains table has one row per iteration (0 = miceforest's random initialisation) and
    imputed variable: the mean and SD of the imputed cells, the usual convergence check.
    A text category enters it by its level numbers (0 = first level in sorted order), so
    for two levels the mean is the share of the second.

    Parameters
    ----------
    data : DataFrame
        The incomplete data; never modified.
    seed : int
        This imputation's own seed (see ``mlmi.run.seeds.int_seed_for``).
    iterations : int
        MICE iterations of miceforest.
    exclude, categorical : sequence of str
        Columns kept out of the imputation model; columns imputed as categories.
    threads : int
        LightGBM threads; results do not depend on it.
    targets : sequence of str, optional
        The columns to impute (default: every column not excluded); the others only predict.
    predictors : DataFrame, optional
        Added predictor columns (same index as ``data``), not imputed and not returned.
    clusters : Series, optional
        The cluster of each row: train the models on a bootstrap sample of whole clusters (drawn
        from ``seed``), then impute ``data`` with them. A cluster drawn twice keeps its id:
        nothing is computed per cluster on the sample (``predictors`` come from ``data``).
    """
    _check_listed_columns(data, "imputation.exclude", exclude)
    _check_listed_columns(data, "imputation.categorical", categorical)
    work = data.drop(columns=list(exclude))
    work = work.astype({c: "category" if c in categorical or is_text(work[c]) else float for c in work.columns})
    targets = [c for c in (work.columns if targets is None else targets) if work[c].isna().any()]
    if not targets:
        return data.copy(), pd.DataFrame(columns=CHAIN_COLUMNS)
    if predictors is not None:
        work = work.join(predictors)
    index, work = work.index, work.reset_index(drop=True)     # miceforest wants 0..n-1
    schema = {target: [c for c in work.columns if c != target] for target in targets}
    rng = np.random.default_rng(seed)
    train = work if clusters is None else work.iloc[_cluster_bootstrap(clusters, rng)].reset_index(drop=True)
    kernel = imputation_kernel()(train, num_datasets=1, variable_schema=schema, random_state=seed,
                              save_all_iterations_data=True, **MEAN_MATCH)
    kernel.mice(iterations, **lightgbm_parameters(threads))
    imputed = kernel if clusters is None else kernel.impute_new_data(
        work, iterations=iterations, random_state=int(rng.integers(2**32)), save_all_iterations_data=True)
    # The last iteration by number: impute_new_data's result says it has none (miceforest 6.0.5), so that
    # complete_data without ``iteration`` would give its random initialisation.
    completed = imputed.complete_data(dataset=0, iteration=iterations).set_axis(index)
    return _restore(data, completed[[c for c in completed.columns if c in data.columns]]), \
        _chains(imputed, work, targets, iterations)


def imputation_kernel():
    """miceforest's ImputationKernel, imported here, not above (a multilevel impute job never loads LightGBM), and
    without letting LightGBM import matplotlib: it does so only to know whether its plotting functions can work
    (``lightgbm.compat``), which mlmi never calls, and that costs every impute job ~0.2 s. Where matplotlib is
    loaded already, nothing changes; after the import, matplotlib imports as ever."""
    blocked = "matplotlib" not in sys.modules
    if blocked:
        sys.modules["matplotlib"] = None  # Python's sign for "not importable": an import of it raises ImportError
    try:
        from miceforest import ImputationKernel
    finally:
        if blocked:
            del sys.modules["matplotlib"]
    return ImputationKernel


def _cluster_bootstrap(clusters: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Row positions of a bootstrap sample of whole clusters: as many clusters as there are, drawn with
    replacement, each with all its rows."""
    codes, uniques = pd.factorize(clusters)
    rows = [np.flatnonzero(codes == code) for code in range(len(uniques))]
    return np.concatenate([rows[code] for code in rng.integers(len(uniques), size=len(uniques))])


def _chains(imputed, work: pd.DataFrame, targets, iterations: int) -> pd.DataFrame:
    """Mean and SD of each target's imputed cells at every iteration."""
    holes = work.isna()
    rows = []
    for iteration in range(iterations + 1):
        completed = imputed.complete_data(dataset=0, iteration=iteration)
        for variable in targets:
            values = _as_numbers(completed.loc[holes[variable], variable])
            rows.append((iteration, variable, values.mean(), values.std()))
    return pd.DataFrame(rows, columns=CHAIN_COLUMNS)


def _check_listed_columns(data: pd.DataFrame, key: str, columns) -> None:
    """Fail with the config key's name when it lists a column the data lacks."""
    absent = [c for c in columns if c not in data.columns]
    if absent:
        raise ValueError(f"{key} lists columns {absent} that the data does not have (columns: {list(data.columns)})")


def is_text(column: pd.Series) -> bool:
    """Whether a column holds text or true/false values (categories by nature), not numbers."""
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _as_numbers(values: pd.Series) -> pd.Series:
    """Imputed values as floats: numbers as they are, text categories by their level numbers."""
    if isinstance(values.dtype, pd.CategoricalDtype) and not pd.api.types.is_numeric_dtype(values.cat.categories):
        return values.cat.codes.astype(float)
    return values.astype(float)


def _restore(original: pd.DataFrame, completed: pd.DataFrame) -> pd.DataFrame:
    """Put imputed columns back with the original dtypes (integers must come back whole, text as text)."""
    result = original.copy()
    for column in completed.columns:
        values = completed[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(values.cat.categories.dtype)
        result[column] = values.to_numpy()
    return result.astype(original.dtypes.to_dict())
