"""lme4's checks of a model's design before it is fitted (``lFormula`` with ``lmerControl()``'s defaults).

Two kinds, as lme4 has them. A fixed-effect column that is a linear combination of the
columns before it is dropped, with lme4's message (``check.rankX = "message+drop.cols"``).
Random effects that the data cannot identify stop the fit (``check.nlev.gtr.1``,
``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``, all ``"stop"``); the checks lme4 leaves off
by default (``check.nobs.vs.rankZ``, ``check.nlev.gtreq.5``) are off here too. The functions are
pure, so the fit and the start-up check of the user's data give the same verdict.
"""
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class TermSize:
    """What lme4's checks need of one random term: its name (``1 + x | g``), its grouping factor's name and
    number of levels, and its number of effects per level."""

    term: str
    group: str
    n_levels: int
    k: int


def term_sizes(structure) -> list[TermSize]:
    """The sizes of a ``mlmi.fit.random_design.RandomEffects``' terms."""
    return [TermSize(block.term, structure.factors[block.factor].name, structure.factors[block.factor].n_levels,
                     block.k) for block in structure.blocks]


def random_effects_problem(n_obs: int, terms: list[TermSize], residual: bool = True) -> str | None:
    """Why lme4 refuses to fit random terms of these sizes to ``n_obs`` rows, or None.

    lme4's checks in its order, with its words and then what to do: a grouping factor of a single
    level; then, for a model with a residual variance (``residual``: lmer's; glmerControl ignores these
    checks, so that a GLMM may have one level per row, as an observation-level random effect does), a
    factor with as many levels as rows and a term with no fewer random effects than rows (levels x
    effects per level), where its variances cannot be told from the residual's.
    """
    factors = dict((term.group, term.n_levels) for term in terms)
    single = [(group, n) for group, n in factors.items() if n < 2]
    if single:
        return (f"grouping factors must have > 1 sampled level ({single[0][0]!r} has {single[0][1]}); "
                "a mixed model needs several groups: check the grouping factor of the formula")
    if not residual:
        return None
    crowded = [group for group, n in factors.items() if n >= n_obs]
    if crowded:
        return (f"number of levels of each grouping factor must be < number of observations (problems: "
                f"{', '.join(crowded)}): {factors[crowded[0]]} groups in {n_obs} rows; a group needs more than one "
                "row: check the grouping factor of the formula")
    for term in terms:
        n_random = term.n_levels * term.k
        if n_obs <= n_random:
            return (f"number of observations (={n_obs}) <= number of random effects (={n_random}) for term "
                    f"({term.term}); the random-effects parameters and the residual variance (or scale parameter) "
                    f"are probably unidentifiable; {term.n_levels} groups with {term.k} random effects each need "
                    f"more than {n_random} rows: drop a random slope, or give more rows per group")
    return None
