"""Pooled tests of several coefficients at once: D1, the multivariate Wald test of Li, Raghunathan & Rubin (1991).

A question such as "do the three dummies of a factor matter at all?" or "is the effect of ``ses`` equal to that of
``meanses``?" is a linear hypothesis ``H0: C beta = c`` on k rows of C. With multiply imputed data each imputed data
set gives its own estimate ``q_l`` and covariance ``U_l`` (l = 1..m, lme4's ``vcov``); D1 combines them as Rubin's
rules combine one coefficient, as ``mitml::testModels(method = "D1")``, ``mitml::testConstraints`` and
``mice::D1`` compute it (mitml 0.4-4, mice 3.15). Estimates are pooled, never the data.

Two layers, as ``mlmi.pool.rubin``: ``d1`` pools the m estimates and covariance matrices of a hypothesis and
returns the test; ``d1_df`` does only the denominator degrees of freedom. ``hypothesis`` turns a test of the
config (``pooling.tests``: named terms, or linear constraints as text) into C and c; the text is parsed, never
evaluated (design §10). ``d1_tests`` runs every configured test on a run's fit records.
"""
import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special  # what scipy.stats calls, without its 1 s import

from mlmi.fit.record import FitRecord

log = logging.getLogger(__name__)

#: The columns of ``pooled/tests.csv``, in broom's vocabulary (``glance``'s df and df.residual for an F test).
TEST_COLUMNS = ["test", "hypothesis", "statistic", "df", "df_residual", "p_value", "riv", "dfcom", "method", "m"]


class HypothesisError(ValueError):
    """A test of ``pooling.tests`` that names an unknown term, or a constraint that cannot be read."""


@dataclass(frozen=True)
class Hypothesis:
    """``H0: contrasts @ beta = rhs`` over the fixed-effect ``terms``, and the hypothesis as text."""

    name: str
    terms: list
    contrasts: np.ndarray
    rhs: np.ndarray
    text: str


@dataclass(frozen=True)
class D1Result:
    """One D1 test: the statistic on an F(``df1``, ``df2``) reference, its p-value, the average relative increase
    in variance ``riv`` (r1), the pooled constrained quantities ``qbar`` (C qbar - c), ``ubar`` and ``b``, and the
    number of imputations ``m`` and complete-data df ``dfcom`` (None: not used)."""

    statistic: float
    df1: int
    df2: float
    p_value: float
    riv: float
    qbar: np.ndarray
    ubar: np.ndarray
    b: np.ndarray
    m: int
    dfcom: float | None


def d1_df(k: int, m: int, riv: float, dfcom: float | None = None) -> float:
    """Denominator degrees of freedom of D1, as mitml's ``.D1`` computes them (mitml 0.4-4).

    Parameters
    ----------
    k : int
        Number of constraints (rows of C), the numerator df.
    m : int
        Number of imputations.
    riv : float
        The average relative increase in variance r1 (see ``d1``).
    dfcom : float or None
        Complete-data degrees of freedom. None (or infinite): a large sample, Li et al.'s df.

    Returns
    -------
    float
        With ``t = k (m - 1)`` and no dfcom (Li, Raghunathan & Rubin 1991, eq. 1.19; mitml without ``df.com``)::

            v = 4 + (t - 4) (1 + (1 - 2/t) / r1)^2          if t > 4
            v = t (1 + 1/k) (1 + 1/r1)^2 / 2                 otherwise

        With dfcom, Reiter's (2007, eqs. 1-2) small-sample df, written as mitml writes it::

            a  = r1 t / (t - 2),  vstar = (dfcom + 1) / (dfcom + 3) dfcom
            c0 = 1 / (t - 4),  c1 = vstar - 2 (1 + a),  c2 = vstar - 4 (1 + a)
            z  = 1/c2 + c0 a^2 c1 / ((1 + a)^2 c2) + c0 (8 a^2 c1 / ((1 + a) c2^2) + 4 a^2 / ((1 + a) c2))
                 + c0 (4 a^2 / (c2 c1) + 16 a^2 c1 / c2^3) + c0 8 a^2 / c2^2
            v  = 4 + 1/z

        which is ``mice::D1``'s default too (mice passes the model's residual df as ``df.com``). Both are
        infinite, or vstar, at r1 = 0. Reiter's formula assumes t > 4: at t = 4 it gives v = 4, below that
        mitml's arithmetic is followed and a warning logged (newer mitml warns too); more imputations help.

    References
    ----------
    Li, K. H., Raghunathan, T. E. & Rubin, D. B. (1991). Large-sample significance levels from multiply
    imputed data using moment-based statistics and an F reference distribution. JASA 86, 1065-1073.
    Reiter, J. P. (2007). Small-sample degrees of freedom for multi-component significance tests with
    multiple imputation for missing data. Biometrika 94, 502-508.
    """
    t = k * (m - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.float64(riv)
        if dfcom is None or np.isinf(dfcom):
            if t > 4:
                return float(4 + (t - 4) * (1 + (1 - 2 / t) / r) ** 2)
            return float(t * (1 + 1 / k) * (1 + 1 / r) ** 2 / 2)
        if t <= 4:
            log.warning("D1 with k = %d constraints on m = %d imputations: k (m - 1) = %d <= 4, where Reiter's "
                        "small-sample df are not trustworthy (mitml warns likewise); use more imputations", k, m, t)
        a = r * t / np.float64(t - 2)
        vstar = (dfcom + 1) / (dfcom + 3) * dfcom
        c0 = 1 / np.float64(t - 4)
        c1 = vstar - 2 * (1 + a)
        c2 = vstar - 4 * (1 + a)
        z = (1 / c2 + c0 * (a**2 * c1 / ((1 + a) ** 2 * c2))
             + c0 * (8 * a**2 * c1 / ((1 + a) * c2**2) + 4 * a**2 / ((1 + a) * c2))
             + c0 * (4 * a**2 / (c2 * c1) + 16 * a**2 * c1 / c2**3) + c0 * (8 * a**2 / c2**2))
        return float(4 + 1 / z)


def f_upper(statistic: float, df1: int, df2: float) -> float:
    """P(F > statistic) on F(df1, df2), as R's ``pf(statistic, df1, df2, lower.tail = FALSE)``: F(df1, inf) is
    chi-square(df1) / df1 (scipy's F gives NaN there), and a statistic at or below 0 (D2 can be) gives 1."""
    if statistic <= 0:
        return 1.0
    return float(special.chdtrc(df1, df1 * statistic) if np.isinf(df2) else special.fdtrc(df1, df2, statistic))


def d1(estimates, covariances, contrasts=None, rhs=None, dfcom: float | None = None) -> D1Result:
    """The D1 test of ``H0: C beta = c`` from m estimates and their covariance matrices.

    Parameters
    ----------
    estimates : array_like, shape (m, p)
        Each imputed data set's estimates q_l.
    covariances : array_like, shape (m, p, p)
        Their covariance matrices U_l (lme4's ``vcov``).
    contrasts : array_like, shape (k, p), optional
        C; the identity (all p coefficients zero) when None.
    rhs : array_like, shape (k,), optional
        c; zeros when None.
    dfcom : float or None
        Complete-data degrees of freedom for Reiter's df (``d1_df``); None for Li et al.'s.

    Returns
    -------
    D1Result
        On the constrained quantities ``Q_l = C q_l - c`` and ``W_l = C U_l C'`` (Li, Raghunathan & Rubin 1991;
        Schafer 1997, sec. 4.3.3)::

            Qbar = mean(Q_l)                 Ubar = mean(W_l)
            B    = sum((Q_l - Qbar)(Q_l - Qbar)') / (m - 1)
            r1   = (1 + 1/m) tr(B Ubar^-1) / k
            D1   = Qbar' Ubar^-1 Qbar / (k (1 + r1))

        referred to F(k, v) with v from ``d1_df``: p = 1 - F(D1; k, v). D1 replaces the total covariance
        Ubar + (1 + 1/m) B, which m < k + 1 imputations cannot estimate well, by the proportional
        (1 + r1) Ubar: it assumes the fraction of missing information is about the same for every
        linear combination of the k constrained quantities. With B = 0 it is the complete-data Wald
        chi-square divided by k.

    References
    ----------
    Li, K. H., Raghunathan, T. E. & Rubin, D. B. (1991), JASA 86, 1065-1073.
    Reiter, J. P. (2007), Biometrika 94, 502-508.
    Schafer, J. L. (1997). Analysis of Incomplete Multivariate Data. Chapman & Hall.
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(covariances, dtype=float)
    m, p = q.shape
    if m < 2:
        raise ValueError(f"a pooled test needs at least 2 imputations, got m = {m}")
    if u.shape != (m, p, p):
        raise ValueError(f"covariances of shape {u.shape} do not match estimates of shape {q.shape}")
    C = np.eye(p) if contrasts is None else np.atleast_2d(np.asarray(contrasts, dtype=float))
    k = C.shape[0]
    c = np.zeros(k) if rhs is None else np.asarray(rhs, dtype=float).reshape(k)
    Q = q @ C.T - c                                   # (m, k)
    W = np.einsum("ij,ljk,hk->lih", C, u, C)          # (m, k, k): C U_l C'
    qbar, ubar = Q.mean(axis=0), W.mean(axis=0)
    deviations = Q - qbar
    b = deviations.T @ deviations / (m - 1)
    riv = (1 + 1 / m) * np.trace(np.linalg.solve(ubar, b)) / k
    statistic = float(qbar @ np.linalg.solve(ubar, qbar) / (k * (1 + riv)))
    df2 = d1_df(k, m, riv, dfcom)
    return D1Result(statistic=statistic, df1=k, df2=df2, p_value=f_upper(statistic, k, df2),
                    riv=float(riv), qbar=qbar, ubar=ubar, b=b, m=m,
                    dfcom=None if dfcom is None or np.isinf(dfcom) else float(dfcom))


# ---- hypotheses of the config ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_.]")
_QUOTED = re.compile(r"`([^`]+)`")


def hypothesis(test: dict, terms: list[str], factors: dict | None = None) -> Hypothesis:
    """C and c of one test of ``pooling.tests`` over the fixed-effect ``terms`` (lme4's names, in order).

    ``{name, terms: [...]}``: each named term is zero; a name of ``factors`` (a fit record's, as
    ``mlmi.fit.formula.fixed_design`` makes them) stands for all its level columns, tested together.
    ``{name, constraints: ["ses - meanses = 0", ...]}``: linear constraints over term names, each a sum of
    terms with optional numeric coefficients (``2*ses``, ``ses*2``, ``-0.5 * x``) and constants on either side of
    one ``=`` (no ``=``: the expression is zero, as mitml's ``testConstraints`` reads it). A name that is not a
    plain one goes in backticks. Raises HypothesisError, naming the test and what to write instead.
    """
    name = test["name"]
    if "terms" in test:
        chosen = []
        for term in test["terms"]:
            for column in _term_columns(name, term, terms, factors or {}):
                if column in chosen:
                    raise HypothesisError(f"pooling.tests {name!r}: term {column!r} is named twice; name each once")
                chosen.append(column)
        C = np.zeros((len(chosen), len(terms)))
        for row, column in enumerate(chosen):
            C[row, terms.index(column)] = 1.0
        return Hypothesis(name, list(terms), C, np.zeros(len(chosen)), ", ".join(f"{t} = 0" for t in chosen))
    constraints = test["constraints"]
    rows = [_constraint(name, text, terms) for text in constraints]
    C = np.array([row for row, _ in rows]).reshape(len(rows), len(terms))
    if np.linalg.matrix_rank(C) < len(rows):
        raise HypothesisError(f"pooling.tests {name!r}: the constraints {list(constraints)} are not independent "
                              "(one follows from the others, or one has no term left); drop the redundant one")
    return Hypothesis(name, list(terms), C, np.array([c for _, c in rows]), "; ".join(constraints))


def _term_columns(name: str, term: str, terms: list[str], factors: dict) -> list[str]:
    """The columns a ``terms:`` entry stands for: the term itself, or a factor's level columns (main effects)."""
    if term in terms:
        return [term]
    if term in factors:
        levels = factors[term].get("levels", [])
        columns = [f"{term}{level}" for level in levels if f"{term}{level}" in terms]
        if columns:
            return columns
    known = ", ".join(terms)
    named = f"; factors: {', '.join(factors)}" if factors else ""
    raise HypothesisError(f"pooling.tests {name!r}: {term!r} is not a fixed-effect term of model.formula (terms: "
                          f"{known}{named}); name terms as lme4 names them, or a factor to test all its levels")


def _constraint(name: str, text: str, terms: list[str]) -> tuple[np.ndarray, float]:
    """One constraint as a row of C and its constant: ``lhs = rhs`` read as ``lhs - rhs = 0``."""
    sides = text.split("=")
    if len(sides) > 2:
        raise HypothesisError(f"pooling.tests {name!r}: constraint {text!r} has more than one '='; write one "
                              "equation per constraint, such as 'ses - meanses = 0'")
    row, constant = np.zeros(len(terms)), 0.0
    for sign, side in zip((1.0, -1.0), sides):
        side_row, side_constant = _linear(name, text, side, terms)
        row += sign * side_row
        constant -= sign * side_constant          # move constants to the right
    if not row.any():
        raise HypothesisError(f"pooling.tests {name!r}: constraint {text!r} has no term left; a constraint "
                              "relates terms, such as 'ses - meanses = 0'")
    return row, constant


def _linear(name: str, text: str, side: str, terms: list[str]) -> tuple[np.ndarray, float]:
    """A sum of ``[number *] term``, ``term [* number]`` and numbers as coefficients per term and a constant."""
    by_length = sorted(terms, key=len, reverse=True)
    row, constant, position, expect_item, sign = np.zeros(len(terms)), 0.0, 0, True, 1.0

    def refuse(what: str) -> HypothesisError:
        return HypothesisError(f"pooling.tests {name!r}: constraint {text!r}: {what}; write it as a sum of terms "
                               "with numbers, e.g. 'ses - meanses = 0' or '2*x1 + x2 = 1' (names as lme4 gives them, "
                               "others in backticks)")

    def skip_space(at: int) -> int:
        while at < len(side) and side[at].isspace():
            at += 1
        return at

    def read_number(at: int):
        found = _NUMBER.match(side, at)
        return (float(found.group()), found.end()) if found else (None, at)

    def read_term(at: int):
        quoted = _QUOTED.match(side, at)
        if quoted:
            inner = quoted.group(1)
            for candidate in (inner, f"`{inner}`"):
                if candidate in terms:
                    return candidate, quoted.end()
            raise unknown(inner)
        for term in by_length:
            end = at + len(term)
            if side.startswith(term, at) and not (end < len(side) and _NAME_CHAR.match(side[end])
                                                  and _NAME_CHAR.match(term[-1])):
                return term, end
        word = _IDENTIFIER.match(side, at)
        if word:
            raise unknown(word.group())
        return None, at

    def unknown(word: str) -> HypothesisError:
        return HypothesisError(f"pooling.tests {name!r}: constraint {text!r} names {word!r}, not a fixed-effect "
                               f"term of model.formula (terms: {', '.join(terms)}); name terms as lme4 names them")

    position = skip_space(0)
    if position == len(side):
        raise refuse("one side of '=' is empty")
    while position < len(side):
        if not expect_item:
            if side[position] not in "+-":
                raise refuse(f"{side[position:].strip()!r} follows without '+', '-' or '*'")
            sign, expect_item = (1.0 if side[position] == "+" else -1.0), True
            position = skip_space(position + 1)
            continue
        if side[position] in "+-":                        # a leading sign, or '+ -x'
            sign *= 1.0 if side[position] == "+" else -1.0
            position = skip_space(position + 1)
            continue
        coefficient, after = read_number(position)
        term = None
        if coefficient is not None:
            position = skip_space(after)
            if position < len(side) and side[position] == "*":
                term, position = read_term(skip_space(position + 1))
                if term is None:
                    raise refuse("'*' is not followed by a term")
        else:
            term, position = read_term(position)
            if term is None:
                raise refuse(f"{side[position:].strip()!r} is neither a term nor a number")
            coefficient = 1.0
            position = skip_space(position)
            if position < len(side) and side[position] == "*":
                number, after = read_number(skip_space(position + 1))
                if number is None:
                    raise refuse("'*' is not followed by a number (a constraint is linear)")
                coefficient, position = number, after
        if term is None:
            constant += sign * coefficient
        else:
            row[terms.index(term)] += sign * coefficient
        sign, expect_item = 1.0, False
        position = skip_space(position)
    if expect_item:
        raise refuse("it ends with a sign")
    return row, constant


# ---- the pool stage's table -----------------------------------------------------------------------------------

def fit_arrays(fits: list[FitRecord]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The fixed-effect terms of m fit records and their estimates (m, p) and lme4 covariances (m, p, p)."""
    terms = fits[0].terms
    for fit in fits[1:]:
        if fit.terms != terms:
            raise ValueError(f"the fits' fixed-effect terms differ ({terms} and {fit.terms}); a pooled test "
                             "needs the same terms in every fit")
    estimates = np.array([list(fit.estimates.values()) for fit in fits])
    return terms, estimates, np.array([fit.vcov for fit in fits])


def d1_tests(fits: list[FitRecord], tests: list[dict], dfcom: float | None) -> pd.DataFrame:
    """``pooled/tests.csv``: one row per test of ``pooling.tests``, D1 over the m fit records (header only when
    no test is asked for). ``dfcom`` is the pooling's complete-data df (n - npar, as mice::pool and mice::D1
    take it), or None for Li et al.'s large-sample df (mitml's default)."""
    rows = []
    if tests:
        terms, estimates, covariances = fit_arrays(fits)
        for test in tests:
            tested = hypothesis(test, terms, fits[0].factors)
            result = d1(estimates, covariances, tested.contrasts, tested.rhs, dfcom)
            rows.append({"test": tested.name, "hypothesis": tested.text, "statistic": result.statistic,
                         "df": result.df1, "df_residual": result.df2, "p_value": result.p_value, "riv": result.riv,
                         "dfcom": result.dfcom, "method": "D1", "m": result.m})
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def tests_table(fits: list[FitRecord], tests, comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """``pooled/tests.csv``: the D1 tests of ``pooling.tests`` (``d1_tests``, with the fits' complete-data df), then
    the rows of ``pooling.compare``'s likelihood-ratio comparisons when there are any (``comparisons``:
    ``mlmi.pool.compare.comparison_tests``); the header only when neither is asked for."""
    table = d1_tests(fits, list(tests), dfcom=fits[0].dfcom)
    if comparisons is None:
        return table
    return comparisons if table.empty else pd.concat([table, comparisons], ignore_index=True)
