"""The fast paths of lme4's one-factor deviance (issue 15) give the very numbers of the plain ones, bit for bit.

A fit's path (BOBYQA's steps, L-BFGS-B's gradients) depends on every bit of every deviance, so each shortcut is
held here to the computation it replaces: many points at once to each point alone, the closed-form 2x2 Cholesky
factor to LAPACK's, the group-ordered cross-products to each group's own product, a cached deviance to a fresh
one, and the fit stage's shared Design to one built again. tests/test_fit.py holds the deviance itself to
statsmodels' likelihood and to lme4.
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit import deviance
from mlmi.fit.formula import _numbers_as_numbers, parse_formula
from mlmi.fit.lmer import Design, Evaluations, _blocks, cross_products, fit_design, fit_mixed
from mlmi.fit.r2 import fit_r2
from mlmi.fit.record import FitRecord

DATA = Path(__file__).parent / "data"
MODELS = ["mathach ~ ses + (1 | schid)", "mathach ~ ses + female + (1 + ses | schid)",
          "mathach ~ ses + (1 + ses + female | schid)"]


@pytest.fixture(scope="module")
def small():
    return pd.read_csv(DATA / "small.csv")


def same_bits(a, b) -> bool:
    """Whether two float arrays hold the same numbers to the last bit (signed zeros and NaNs told apart)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def points(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """Thetas from 1e-6 to 1e6 in size, some elements exactly 0 (a boundary)."""
    thetas = rng.normal(size=(count, size)) * rng.choice([1e-6, 1e-2, 1.0, 1e2, 1e6], size=(count, 1))
    thetas[rng.random((count, size)) < 0.15] = 0.0
    return thetas


def plain_criterion(theta: np.ndarray, cp: deviance.CrossProducts, reml: bool) -> float:
    """The profiled deviance group by group, as mlmi computed it before issue 15: a product per group, LAPACK's
    Cholesky factors, einsum's forward substitution, one point at a time."""
    q, p = cp.ztx.shape[1:]
    lam = deviance.lambda_of(theta, q)
    try:
        chol = np.linalg.cholesky(lam.T @ cp.ztz @ lam + np.eye(q))
        solved = np.empty((len(chol), q, p + 1))
        rhs = np.concatenate([lam.T @ cp.ztx, (cp.zty @ lam)[..., None]], axis=2)
        for i in range(q):
            solved[:, i] = (rhs[:, i] - np.einsum("gk,gkj->gj", chol[:, i, :i], solved[:, :i])) / chol[:, i, i, None]
        rzx, cu = solved[..., :p].reshape(-1, p), solved[..., p].ravel()
        rx = np.linalg.cholesky(cp.xtx - rzx.T @ rzx)
    except np.linalg.LinAlgError:
        return np.inf
    cbeta, rhs = np.empty(p), cp.xty - rzx.T @ cu
    for i in range(p):
        cbeta[i] = (rhs[i] - rx[i, :i] @ cbeta[:i]) / rx[i, i]
    log_det_l = 2 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)))
    log_det_rx = 2 * np.sum(np.log(np.diag(rx))) if reml else 0.0
    return deviance.profiled(log_det_l, cp.yty - cu @ cu - cbeta @ cbeta, log_det_rx, cp.n, p, reml)


@pytest.mark.parametrize("formula", MODELS)
@pytest.mark.parametrize("reml", [True, False])
def test_many_points_at_once_are_each_point_alone(small, formula, reml):
    objective = Design(small, parse_formula(formula)).objective(reml)
    thetas = points(np.random.default_rng(1), len(objective.start), 48)
    one_by_one = [plain_criterion(theta, objective.cp, reml) for theta in thetas]
    assert same_bits([objective.criterion(theta) for theta in thetas], one_by_one)
    for size in (1, 6, 24):
        at_once = np.concatenate([objective.criteria(thetas[i:i + size]) for i in range(0, len(thetas), size)])
        assert same_bits(at_once, one_by_one)


@pytest.mark.parametrize("q", [1, 2])
def test_closed_form_cholesky_is_lapacks(q):
    rng = np.random.default_rng(2)
    for scale in (1e-8, 1.0, 1e8):
        a = rng.normal(size=(500, q, q)) * scale
        matrices = a @ np.swapaxes(a, 1, 2) + np.eye(q)
        assert same_bits(deviance._cholesky(matrices), np.linalg.cholesky(matrices))
    overflowed = np.array([[[np.inf, -np.inf], [-np.inf, np.inf]], [[np.inf, 1.0], [1.0, 2.0]]])[:, :q, :q]
    assert same_bits(deviance._cholesky(overflowed), np.linalg.cholesky(overflowed))
    not_definite = {1: [[[-1.0]]], 2: [[[1.0, 2.0], [2.0, 1.0]]]}[q]
    with pytest.raises(np.linalg.LinAlgError):
        deviance._cholesky(np.array(not_definite))


@pytest.mark.parametrize("q", [1, 2, 3])
def test_forward_substitution_solves(q):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(50, q, q))
    lower = np.linalg.cholesky(a @ np.swapaxes(a, 1, 2) + np.eye(q))
    b = rng.normal(size=(50, q, 6))
    assert deviance._forward(lower, b) == pytest.approx(np.linalg.solve(lower, b), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("formula", MODELS)
def test_group_ordered_cross_products_are_each_groups_own(small, formula):
    design = Design(small, parse_formula(formula))
    cp = cross_products(design)
    blocks = _blocks(design)
    assert same_bits(cp.ztz, [design.Z[rows].T @ design.Z[rows] for rows in blocks])
    assert same_bits(cp.ztx, [design.Z[rows].T @ design.X[rows] for rows in blocks])
    assert same_bits(cp.zty, [design.Z[rows].T @ design.y[rows] for rows in blocks])


@pytest.mark.parametrize("formula", MODELS)
def test_derivatives_from_many_points_are_those_from_each(small, formula):
    objective = Design(small, parse_formula(formula)).objective(True)
    theta = objective.start * 0.7 + 0.05
    assert same_bits(deviance.gradient(objective.criterion, theta, many=objective.criteria),
                     deviance.gradient(objective.criterion, theta))
    assert same_bits(deviance.hessian(objective.criterion, theta, many=objective.criteria),
                     deviance.hessian(objective.criterion, theta))
    value, grad = deviance.value_and_gradient(objective.criterion, theta, many=objective.criteria)
    assert value == objective.criterion(theta) and same_bits(grad, deviance.gradient(objective.criterion, theta))


def test_evaluations_compute_each_theta_once(small):
    objective = Design(small, parse_formula(MODELS[1])).objective(True)
    asked = []

    class Counted:
        def __getattr__(self, name):
            return getattr(objective, name)

        def criteria(self, thetas):
            asked.extend(map(tuple, thetas))
            return objective.criteria(thetas)

    evaluations = Evaluations(Counted())
    theta = np.array([0.5, -0.1, 0.2])
    first = deviance.hessian(evaluations.criterion, theta, many=evaluations.criteria)
    assert 0 < len(asked) == len(set(asked)) <= 24             # 6 pairs x 4 points, a repeated one asked once
    computed = len(asked)
    again = deviance.hessian(evaluations.criterion, theta)      # point by point: every one remembered
    assert same_bits(first, again) and len(asked) == computed
    assert same_bits(first, deviance.hessian(objective.criterion, theta))
    assert evaluations.reml is True and evaluations.bounds == objective.bounds


def test_numbers_become_floats_as_astype_makes_them(small):
    data = small.assign(count=pd.array([1, None] * (len(small) // 2) + [3] * (len(small) % 2), dtype="Int64"),
                        flag=small["female"] == 1, label="a")
    expected = data.astype({c: float for c in data.columns if pd.api.types.is_numeric_dtype(data[c])})
    pd.testing.assert_frame_equal(_numbers_as_numbers(data), expected)


def test_the_fit_stage_shares_its_design_with_r2(small):
    formula = MODELS[1]
    design = Design(small, parse_formula(formula))
    shared = fit_design(design, formula)
    shared["r2"] = fit_r2(small, FitRecord.from_fit(shared), design)
    alone = fit_mixed(small, formula)
    alone["r2"] = fit_r2(small, FitRecord.from_fit(alone))
    for record in (shared, alone):
        record.pop("fit_seconds")
    assert shared == alone
