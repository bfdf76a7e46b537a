"""The random-effects structure of a model on a data set, as lme4's ``mkReTrms`` builds it.

Each random term (``mlmi.fit.formula.RandomTerm``) becomes a ``Block``: its grouping factor's code per
row, the factor's levels, and the term's model matrix (the columns each level gets an effect of,
named as lme4's ``cnms``). The blocks are ordered as lme4 orders them, by decreasing number of
levels (``reorder.terms``: R's ``rev(order(nl))``, applied only when some term has more levels
than the one before it, which also reverses the order of ties), and the grouping factors are
listed once each in the order they first appear (lme4's ``flist`` with its ``assign``). The
offsets of the blocks in the random-effects vector are lme4's ``Gp``.

A grouping factor's levels are those of R's ``factor``: the values in sorted order. An interaction
``a:b`` (lme4's ``%i%``) has as levels the combinations that occur, ordered by the level of ``a``
and then of ``b``, and labelled ``"a1:b1"``.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlmi.fit.formula import MixedFormula, RandomTerm, fixed_design, level_label, lme4_name


@dataclass(frozen=True)
class Factor:
    """A grouping factor: its name as lme4 writes it, the level code of each row (0-based, in the order of
    ``levels``), and its levels (a column's values; an interaction's ``"a:b"`` labels)."""

    name: str
    codes: np.ndarray
    levels: list

    @property
    def n_levels(self) -> int:
        """Number of levels (groups)."""
        return len(self.levels)


@dataclass(frozen=True)
class Block:
    """One random term on the data: its grouping factor (``factor``, an index into ``RandomEffects.factors``),
    the term as lme4 names it, and the model matrix ``Z`` (rows x ``names``) whose columns each level of the
    factor gets an effect of."""

    term: str
    factor: int
    names: list[str]
    Z: np.ndarray

    @property
    def k(self) -> int:
        """Number of effects per level (lme4's ``nc``)."""
        return self.Z.shape[1]


@dataclass(frozen=True)
class RandomEffects:
    """The random-effects structure: blocks in lme4's order and the grouping factors they use, each once."""

    blocks: list[Block]
    factors: list[Factor]

    @property
    def sizes(self) -> list[int]:
        """Number of random effects of each block (levels x effects per level)."""
        return [self.factors[b.factor].n_levels * b.k for b in self.blocks]

    @property
    def gp(self) -> list[int]:
        """lme4's ``Gp``: where each block starts in the random-effects vector, and its end."""
        return [0, *np.cumsum(self.sizes).tolist()]

    @property
    def assign(self) -> list[int]:
        """lme4's ``attr(flist, "assign")``: the factor (from 1) of each block."""
        return [b.factor + 1 for b in self.blocks]


def random_effects(data: pd.DataFrame, formula: MixedFormula) -> RandomEffects:
    """The random-effects structure of ``formula`` on complete ``data`` (see the module docstring)."""
    terms = list(formula.bars)
    factors = {bar.group: _factor(data, bar) for bar in terms}
    nl = [factors[bar.group].n_levels for bar in terms]
    if any(later > earlier for earlier, later in zip(nl, nl[1:])):
        terms = [terms[i] for i in np.argsort(nl, kind="stable")[::-1]]
    names = list(dict.fromkeys(bar.group for bar in terms))
    blocks = [_block(data, bar, names.index(bar.group)) for bar in terms]
    return RandomEffects(blocks, [factors[name] for name in names])


def _factor(data: pd.DataFrame, bar: RandomTerm) -> Factor:
    """The grouping factor of ``bar``: one column's sorted values, or the occurring combinations of several."""
    if len(bar.factors) == 1:
        levels, codes = np.unique(data[bar.factors[0]].to_numpy(), return_inverse=True)
        return Factor(bar.group, codes, levels.tolist())
    uniques, columns = zip(*(np.unique(data[column].to_numpy(), return_inverse=True) for column in bar.factors))
    combinations, codes = np.unique(np.column_stack(columns), axis=0, return_inverse=True)
    labels = [":".join(level_label(unique[i]) for unique, i in zip(uniques, row)) for row in combinations]
    return Factor(bar.group, codes.ravel(), labels)


def _block(data: pd.DataFrame, bar: RandomTerm, factor: int) -> Block:
    """The term's block: intercept and numeric columns as they are; anything else (a factor, an expression)
    through the fixed part's model matrix, named as lme4 names its columns."""
    numeric = bar.plain_slopes and all(pd.api.types.is_numeric_dtype(data[s]) for s in bar.slopes)
    if numeric:
        names = (["(Intercept)"] if bar.intercept else []) + [lme4_name(s) for s in bar.slopes]
        columns = ([np.ones(len(data))] if bar.intercept else []) + [data[s].to_numpy(dtype=float)
                                                                     for s in bar.slopes]
        Z = np.column_stack(columns)
    else:
        design = fixed_design(bar.terms, data)
        names, Z = design.names, design.X
    return Block(bar.lme4_text, factor, names, Z)
