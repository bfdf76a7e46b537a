"""Missing values put into complete data: MCAR as the merTools vignette's ``add_NA`` does, MAR and MNAR.

Three mechanisms (Rubin 1976), all with one uniform draw per row and listed column:

- ``MCAR``: every cell of a listed column goes missing independently with probability
  ``prob[c]``, so the complete cases are a simple random sample and listwise deletion
  stays unbiased.
- ``MAR``: a cell of column ``c`` goes missing with probability
  ``expit(alpha_c + strength * z)``, ``z`` a standardised score of fully observed
  predictor columns; missingness depends only on observed values.
- ``MNAR``: the same with ``z`` the column's own standardised value, so missingness
  depends on the very value that is lost.

The intercept ``alpha_c`` is solved so that the expected fraction missing equals
``prob[c]`` under every mechanism; the realised count is then a sum of independent
Bernoulli draws around it.
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.special import expit, logit

MECHANISMS = ("MCAR", "MAR", "MNAR")


def _check(data: pd.DataFrame, prob: dict) -> None:
    """Raise ValueError naming the first listed column that is absent or has a bad probability."""
    for column, p in prob.items():
        if column not in data.columns:
            raise ValueError(f"column {column!r} to ampute is not in the data")
        if not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"probability {p!r} for column {column!r} is not in [0, 1)")


def _draw(data: pd.DataFrame, probabilities: Mapping, rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``data`` with cell (i, c) missing where the i-th uniform of column c is below its probability.

    ``probabilities`` maps column -> a scalar (MCAR) or one probability per row; columns
    are drawn in its order, ``len(data)`` uniforms each, even when nothing goes missing.
    """
    out = data.copy()
    for column, p in probabilities.items():
        _mask(out, column, rng.random(len(out)) < p)
    return out


def _mask(data: pd.DataFrame, column: str, missing: np.ndarray) -> None:
    """Make the cells of ``column`` where ``missing`` is true missing, in place; an integer column that gets
    a hole becomes nullable ``Int64`` (0/1 stays integer, not float)."""
    if not missing.any():
        return
    values = data[column]
    if pd.api.types.is_integer_dtype(values):
        values = values.astype("Int64")
    data[column] = values.mask(missing)


def ampute_mcar(data: pd.DataFrame, prob: dict[str, float], rng: np.random.Generator) -> pd.DataFrame:
    """A copy of ``data`` with each cell of each listed column missing with its probability.

    Parameters
    ----------
    data : pandas.DataFrame
        Complete data; never modified.
    prob : dict of str to float
        Column -> probability in [0, 1) that a cell becomes missing, as in the vignette's
        ``add_NA(x, prob)`` (``rbinom(length(x), 1, prob)``). Columns are processed in this
        order, one uniform draw per row each, so a seed gives the same holes.
    rng : numpy.random.Generator
        The source of randomness.

    Returns
    -------
    pandas.DataFrame
        The amputed copy. An integer column that receives missing values becomes nullable
        ``Int64`` (0/1 stays integer, not float); float columns hold NaN; unlisted columns
        are untouched.
    """
    _check(data, prob)
    return _draw(data, prob, rng)


def solve_intercept(eta: np.ndarray, prob: float) -> float:
    """The intercept ``alpha`` with ``mean(expit(alpha + eta)) == prob``.

    Parameters
    ----------
    eta : numpy.ndarray
        The slope part of the linear predictor per row, ``strength * z``; finite.
    prob : float
        The expected fraction missing, in [0, 1).

    Returns
    -------
    float
        ``alpha``, found by Brent's method (``scipy.optimize.brentq``) to the precision of
        a double; ``-inf`` when ``prob`` is 0 (no cell may go missing).

    Notes
    -----
    ``mean(expit(alpha + eta))`` increases strictly in ``alpha``, so the root is unique.
    It lies in ``logit(prob) -/+ (max|eta| + 1)``: below that interval every term is
    below ``prob``, above it every term is above, which brackets the root.
    """
    eta = np.asarray(eta, dtype=float)
    if prob == 0:
        return -math.inf
    if eta.size == 0 or not np.isfinite(eta).all():
        raise ValueError("eta must be a non-empty array of finite numbers")
    from scipy.optimize import brentq  # MAR and MNAR only: MCAR (the default) needs none of scipy.optimize's ~0.3 s

    centre, half_width = float(logit(prob)), float(np.abs(eta).max()) + 1.0

    def excess(alpha: float) -> float:
        return float(expit(alpha + eta).mean()) - prob

    return brentq(excess, centre - half_width, centre + half_width, xtol=1e-14, rtol=4 * np.finfo(float).eps,
                  maxiter=200)


def _standardise(values: pd.Series, what: str) -> np.ndarray:
    """``values`` to mean 0 and SD 1 (population SD, ddof 0); ValueError naming ``what`` if impossible."""
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        raise ValueError(f"{what} is not numeric (dtype {values.dtype})")
    if values.isna().any():
        raise ValueError(f"{what} has missing values; it must be fully observed")
    x = values.to_numpy(dtype=float)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} has infinite values")
    sd = x.std()
    if not sd > 0:
        raise ValueError(f"{what} is constant, so it cannot be standardised")
    return (x - x.mean()) / sd


def _check_predictors(data: pd.DataFrame, mechanism: str, prob: dict, predictors) -> None:
    """Raise ValueError unless ``predictors`` fits ``mechanism``: required for MAR, absent otherwise."""
    if mechanism != "MAR":
        if predictors:
            raise ValueError(f"predictors are used only by mechanism 'MAR', not {mechanism!r}: "
                             f"{mechanism} takes none (got {predictors!r})")
        return
    predictors = predictors or {}
    if not isinstance(predictors, Mapping):
        raise ValueError(f"MAR predictors must map each amputed column to a list of columns, got {predictors!r}")
    for column in predictors:
        if column not in prob:
            raise ValueError(f"MAR predictors given for column {column!r}, which is not amputated "
                             f"(not a key of prob)")
    for column in prob:
        names = predictors.get(column)
        if not names:
            raise ValueError(f"MAR needs predictors for column {column!r}: give predictors={{{column!r}: [...]}} "
                             f"with fully observed columns")
        if isinstance(names, str) or not all(isinstance(name, str) for name in names):
            raise ValueError(f"MAR predictors of column {column!r} must be a list of column names, got {names!r}")
        for name in names:
            if name not in data.columns:
                raise ValueError(f"MAR predictor {name!r} of column {column!r} is not in the data")
            if name in prob:
                raise ValueError(f"MAR predictor {name!r} of column {column!r} is itself amputated; "
                                 f"predictors must be fully observed columns not listed in prob")


def _check_strength(strength) -> None:
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not math.isfinite(strength):
        raise ValueError(f"strength {strength!r} is not a finite number")


def missing_probabilities(data: pd.DataFrame, *, mechanism: str, prob: dict[str, float],
                          predictors: dict[str, list[str]] | None = None, strength: float = 1.0) -> pd.DataFrame:
    """The probability that each cell of each listed column goes missing under ``mechanism``.

    The model :func:`ampute` draws from; the arguments are those of :func:`ampute` (see
    there). Every column's probabilities average to its ``prob`` to within about 1e-15.

    Returns
    -------
    pandas.DataFrame
        One float column per key of ``prob``, in that order, with the index of ``data``:
        ``prob[c]`` in every row under MCAR, with strength 0, or when ``prob[c]`` is 0;
        otherwise ``expit(alpha_c + strength * z)`` with ``alpha_c`` from
        :func:`solve_intercept`.

    Raises
    ------
    ValueError
        For an unknown mechanism, a column not in the data, a probability outside [0, 1),
        a strength that is not a finite number, and the predictor problems listed under
        :func:`ampute`.
    """
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown missingness mechanism {mechanism!r}: use one of {', '.join(MECHANISMS)}")
    _check(data, prob)
    _check_strength(strength)
    _check_predictors(data, mechanism, prob, predictors)
    n = len(data)
    out = {}
    for column, p in prob.items():
        if mechanism == "MCAR":
            out[column] = np.full(n, float(p))
            continue
        if mechanism == "MAR":
            names = predictors[column]
            total = sum(_standardise(data[name], f"MAR predictor {name!r} of column {column!r}") for name in names)
            z = _standardise(pd.Series(total), f"the sum of the standardised MAR predictors {names!r} "
                                               f"of column {column!r}")
        else:
            z = _standardise(data[column], f"column {column!r} (MNAR uses its own values)")
        if strength == 0 or p == 0:
            out[column] = np.full(n, float(p))
        else:
            eta = strength * z
            out[column] = expit(solve_intercept(eta, float(p)) + eta)
    return pd.DataFrame(out, index=data.index, columns=list(prob))


def ampute(data: pd.DataFrame, *, mechanism: str, prob: dict[str, float], rng: np.random.Generator,
           predictors: dict[str, list[str]] | None = None, strength: float = 1.0) -> pd.DataFrame:
    """A copy of ``data`` with missing values put into the listed columns by ``mechanism``.

    Parameters
    ----------
    data : pandas.DataFrame
        Complete data; never modified.
    mechanism : {"MCAR", "MAR", "MNAR"}
        How the chance of a cell going missing is set (module docstring):

        - ``"MCAR"``: ``prob[c]`` for every cell; exactly :func:`ampute_mcar`, same holes
          from the same ``rng`` state.
        - ``"MAR"``: ``expit(alpha_c + strength * z)``, ``z`` the standardised sum of the
          standardised ``predictors[c]``.
        - ``"MNAR"``: the same with ``z`` the standardised values of column ``c`` itself,
          before they are made missing.

        "Standardised" is mean 0 and SD 1 over the rows (population SD).
    prob : dict of str to float
        Column -> the expected fraction of its cells that go missing, in [0, 1). Under MAR
        and MNAR, ``alpha_c`` is solved (:func:`solve_intercept`) so that the mean of the
        row probabilities equals ``prob[c]``; the realised count of holes is then a sum of
        independent Bernoulli draws with that mean. Columns are processed in this order.
    rng : numpy.random.Generator
        The source of randomness: one uniform per row for each listed column, in order, a
        cell missing where its uniform is below its probability.
    predictors : dict of str to list of str, optional
        MAR only, and then required for every column of ``prob``: column -> the fully
        observed numeric columns its missingness depends on, e.g. ``{"ses": ["mathach"]}``.
        A predictor may not be a column of ``prob`` (it would be amputated itself). Under
        MCAR and MNAR it must be None or empty.
    strength : float, default 1.0
        MAR and MNAR: the slope on ``z``, the log odds ratio of missingness per SD of
        ``z`` (odds ratio ``exp(strength)``). Positive: higher values more likely missing;
        0: every cell ``prob[c]``, the same holes as MCAR from the same ``rng`` state.
        Not used by MCAR, which is the strength-0 case.

    Returns
    -------
    pandas.DataFrame
        The amputed copy, dtypes as :func:`ampute_mcar`: an integer column that receives
        missing values becomes nullable ``Int64``; float columns hold NaN; unlisted
        columns are untouched.

    Raises
    ------
    ValueError
        Naming the mechanism or column: an unknown mechanism; a column of ``prob`` not in
        the data, or its probability outside [0, 1); a non-finite strength; under MAR a
        column without predictors, predictors for a column not in ``prob``, a predictor
        that is not a column, is itself amputated, is not numeric, has missing values or
        is constant; under MNAR a listed column that is not numeric, has missing values or
        is constant; predictors given under MCAR or MNAR.

    Notes
    -----
    MAR makes the complete cases a biased sample (with positive strength the rows with
    high predictor values lose cells), yet the missing values are ignorable given the
    predictors, so an imputation model that uses them can recover the truth. Under MNAR
    they are not ignorable: with positive strength the observed values of a column are
    shifted down, and no imputation from the observed data alone undoes that.

    References
    ----------
    Rubin, D. B. (1976). Inference and missing data. Biometrika 63(3), 581-592.
    Schouten, R. M., Lugtig, P. and Vink, G. (2018). Generating missing values for
    simulation purposes: a multivariate amputation procedure. Journal of Statistical
    Computation and Simulation 88(15), 2909-2930 (logistic missingness with a solved
    intercept, as in mice's ``ampute``).
    """
    if mechanism == "MCAR":
        _check_strength(strength)
        _check_predictors(data, mechanism, prob, predictors)
        return ampute_mcar(data, prob, rng)
    probabilities = missing_probabilities(data, mechanism=mechanism, prob=prob, predictors=predictors,
                                          strength=strength)
    return _draw(data, {column: probabilities[column].to_numpy() for column in probabilities}, rng)


def ampute_clusters(data: pd.DataFrame, group: str, *, mechanism: str, prob: dict[str, float],
                    rng: np.random.Generator, predictors: dict[str, list[str]] | None = None,
                    strength: float = 1.0) -> pd.DataFrame:
    """A copy of ``data`` with each listed level-2 column missing in whole clusters of ``group``.

    :func:`ampute` on a table of one row per cluster (in order of first appearance): the listed
    columns' first value in the cluster and, under MAR, the cluster means of the predictors; a
    cluster's draw then holds for all its rows. ``prob`` is the expected fraction of clusters, so
    a school's ``size`` is missing for all its students or none, as a school-level survey item is.
    Arguments as for :func:`ampute`.
    """
    if group not in data.columns:
        raise ValueError(f"the grouping column {group!r} of the clusters to ampute is not in the data")
    _check(data, prob)
    clusters = data.groupby(group, sort=False)
    named = sorted({name for names in (predictors or {}).values() for name in names} & set(data.columns))
    table = clusters[list(prob)].first().join(clusters[named].mean())
    holes = ampute(table, mechanism=mechanism, prob=prob, rng=rng, predictors=predictors, strength=strength).isna()
    out = data.copy()
    for column in prob:
        _mask(out, column, data[group].map(holes[column]).to_numpy(dtype=bool))
    return out


CONFIG_DEFAULTS = {"predictors": {}, "strength": 1.0, "level2": []}


def ampute_from_config(data: pd.DataFrame, missingness: dict, rng: np.random.Generator,
                       group: str | None = None) -> pd.DataFrame:
    """:func:`ampute` driven by the workflow's ``missingness`` config block.

    Parameters
    ----------
    data : pandas.DataFrame
        Complete data; never modified.
    missingness : dict
        ``mechanism`` and ``prob`` (required), ``predictors`` (default ``{}``), ``strength``
        (default 1.0) and ``level2`` (default ``[]``). ``predictors`` are passed on only when the
        mechanism is MAR, so one block serves a study grid that varies ``missingness.mechanism``
        over the same predictors. The columns of ``level2`` (each also in ``prob``) go missing in
        whole clusters (:func:`ampute_clusters`), after the others go missing cell by cell.
    rng : numpy.random.Generator
        The source of randomness.
    group : str, optional
        The grouping column of the clusters; needed when ``level2`` lists columns.

    Returns
    -------
    pandas.DataFrame
        As :func:`ampute`.
    """
    unknown = set(missingness) - {"mechanism", "prob", *CONFIG_DEFAULTS}
    if unknown:
        raise ValueError(f"unknown missingness keys: {', '.join(sorted(map(str, unknown)))}")
    for key in ("mechanism", "prob"):
        if key not in missingness:
            raise ValueError(f"missingness.{key} is required")
    settings = CONFIG_DEFAULTS | dict(missingness)
    mechanism, level2 = settings["mechanism"], settings["level2"]
    unlisted = [column for column in level2 if column not in settings["prob"]]
    if unlisted:
        raise ValueError(f"missingness.level2 lists {unlisted}, which missingness.prob does not; give each its "
                         "expected fraction of clusters there")
    if level2 and group is None:
        raise ValueError("missingness.level2 needs the grouping column of the clusters (model.formula's group)")
    prob, predictors = settings["prob"], settings["predictors"] if mechanism == "MAR" else {}
    kept = {"mechanism": mechanism, "rng": rng, "strength": settings["strength"]}
    out = ampute(data, prob={c: p for c, p in prob.items() if c not in level2},
                 predictors={c: names for c, names in predictors.items() if c not in level2} or None, **kept)
    if not level2:
        return out
    return ampute_clusters(out, group, prob={c: prob[c] for c in level2},
                           predictors={c: names for c, names in predictors.items() if c in level2} or None, **kept)
