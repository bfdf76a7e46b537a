"""lme4's checks of a model's design before it is fitted (``lFormula`` with ``lmerControl()``'s defaults).

Two kinds, as lme4 has them. A fixed-effect column that is a linear combination of the
columns before it is dropped, with lme4's message (``check.rankX = "message+drop.cols"``).
Random effects that the data cannot identify stop the fit (``check.nlev.gtr.1``,
``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``, all ``"stop"``); the checks lme4 leaves off
by default (``check.nobs.vs.rankZ``, ``check.nlev.gtreq.5``) are off here too. The functions are
pure, so the fit and the start-up check of the user's data give the same verdict.
"""
import numpy as np

from mlmi.formula import MixedFormula, lme4_name

#: lme4's ``chkRank.drop.cols`` tolerance: ``qr(X, tol = 1e-7)``.
RANK_TOL = 1e-7


def aliased_columns(X: np.ndarray, tol: float = RANK_TOL) -> list[int]:
    """Indices of the columns of ``X`` that lme4 drops: those (numerically) in the span of the columns before them.

    This is the rule of base R's ``qr(X, tol)`` (LINPACK's dqrdc2), whose pivot lme4 keeps:
    column j is moved to the end when its norm orthogonal to the columns kept before it falls
    below ``tol`` times its own norm (a column of zeros always). So of ``x`` and ``2 * x`` the
    later one goes, and a constant column goes beside the intercept.
    """
    basis = np.empty((X.shape[0], 0))
    dropped = []
    for j, column in enumerate(np.asarray(X, dtype=float).T):
        residual = column.copy()
        for _ in range(2):                     # Gram-Schmidt twice: orthogonal to rounding error
            residual -= basis @ (basis.T @ residual)
        norm = np.linalg.norm(residual)
        if norm < tol * (np.linalg.norm(column) or 1.0):
            dropped.append(j)
        else:
            basis = np.column_stack([basis, residual / norm])
    return dropped


def rank_message(dropped: list[str]) -> str:
    """lme4's message about dropped columns, then their names and what to do."""
    names = ", ".join(map(repr, dropped))
    if len(dropped) == 1:
        return (f"fixed-effect model matrix is rank deficient so dropping 1 column / coefficient: {names}, a linear "
                "combination of the columns before it in the formula; remove it from the formula")
    return (f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} columns / coefficients: {names}, "
            "each a linear combination of the columns before it in the formula; remove them from the formula")


def random_effects_term(formula: MixedFormula) -> str:
    """The random part as lme4 names its term, such as ``1 + x | g``.

    lme4 prints the term as it was written; this spells the intercept out (``1 + x | g`` for ``(x | g)``,
    ``0 + x | g`` for ``(-1 + x | g)``), as the parsed formula no longer knows how it was written."""
    return " + ".join(["1" if formula.random_intercept else "0", *map(lme4_name, formula.random_terms)]) \
        + f" | {lme4_name(formula.group)}"


def random_effects_problem(n_obs: int, n_levels: int, formula: MixedFormula) -> str | None:
    """Why lme4 refuses to fit ``formula``'s random effects to ``n_obs`` rows in ``n_levels`` groups, or None.

    lme4's checks in its order, with its words and then what to do: a single group; as many
    groups as rows; no more rows than random effects (groups x terms per group), where the
    random-effect variances cannot be told from the residual's.
    """
    group = formula.group
    if n_levels < 2:
        return (f"grouping factors must have > 1 sampled level ({group!r} has {n_levels}); "
                "a mixed model needs several groups: check the grouping factor of the formula")
    if n_levels >= n_obs:
        return (f"number of levels of each grouping factor must be < number of observations (problems: {group}): "
                f"{n_levels} groups in {n_obs} rows; a group needs more than one row: check the grouping factor "
                "of the formula")
    n_terms = int(formula.random_intercept) + len(formula.random_terms)
    n_random = n_levels * n_terms
    if n_obs <= n_random:
        return (f"number of observations (={n_obs}) <= number of random effects (={n_random}) for term "
                f"({random_effects_term(formula)}); the random-effects parameters and the residual variance "
                f"(or scale parameter) are probably unidentifiable; {n_levels} groups with {n_terms} random "
                f"effects each need more than {n_random} rows: drop a random slope, or give more rows per group")
    return None
