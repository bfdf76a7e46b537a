"""D2 and D3, the pooled likelihood-ratio comparisons: R's own arithmetic, hand computations, the limits, the
likelihood at given parameters against an independent density, and the nesting and REML refusals (parity on
real fits: tests/parity/test_compare_mitml_mice.py)."""
import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlmi.fit.deviance import CrossProducts, loglik_at
from mlmi.fit.formula import parse_formula
from mlmi.fit.lmer import Design, cross_products, fit_mixed, loglik_at_parameters, relative_factor
from mlmi.fit.record import FitRecord
from mlmi.pool.compare import (ComparisonError, PooledParameters, comparison_tests, d2, d3, lr_statistics,
                               nesting_problem, reml_problem)

# mitml:::.D2 (mitml 0.4-4), printed with %.15g: statistic, df2, riv, p.
#   d <- c(3.2, 5.1, 2.4, 4.4); for (m in 3:4) { r <- mitml:::.D2(d[1:m], 2)
#     cat(sprintf("%.15g", c(r$F, r$v, r$r, pf(r$F, r$k, r$v, lower.tail = FALSE))), "\n") }
#   r <- mitml:::.D2(c(0.5, 3.9, 0.2), 3)   # and the same print
CHI_SQUARES = [3.2, 5.1, 2.4, 4.4]
MITML_D2 = {3: (1.22400977132078, 45.7533590662078, 0.173486931394571, 0.303495741854465),
            4: (1.4918264164573, 143.929635067691, 0.125272898540386, 0.228418888391159)}
NEGATIVE_D2 = (-0.671892013271731, 3.00378481242317, 0.890743174654881, 1.0)


@pytest.mark.parametrize("m", [3, 4])
def test_d2_is_mitmls(m):
    result = d2(CHI_SQUARES[:m], 2)
    assert np.allclose([result.statistic, result.df2, result.riv, result.p_value], MITML_D2[m], rtol=1e-12, atol=0)
    assert (result.df1, result.m) == (2, m)


def test_d2_can_be_negative_and_then_p_is_one():
    result = d2([0.5, 3.9, 0.2], 3)
    assert np.allclose([result.statistic, result.df2, result.riv, result.p_value], NEGATIVE_D2, rtol=1e-12, atol=0)


def test_d2_of_equal_statistics_is_the_chi_square_over_k():
    result = d2([6.0, 6.0, 6.0], 2)
    assert result.riv == 0 and np.isinf(result.df2) and result.statistic == 3.0
    assert result.p_value == pytest.approx(stats.chi2.sf(6.0, 2), rel=1e-12)


def test_d3_by_hand():
    # dbar = mean(-2 (ll0 - ll)) = mean(10, 12) = 11, dtilde = mean(9, 10) = 9.5, m = 2, k = 2:
    # r3 = 3 / (2 * 1) * 1.5 = 2.25, D3 = 9.5 / (2 * 3.25), t = k (m - 1) = 2 <= 4: v = t (1 + 1/k)(1 + 1/r)^2 / 2.
    result = d3([-100.0, -200.0], [-101.0, -201.0], [-105.0, -206.0], [-105.5, -206.0], 2)
    v = 2 * 1.5 * (1 + 1 / 2.25) ** 2 / 2
    assert (result.riv, result.statistic, result.df2) == pytest.approx((2.25, 9.5 / 6.5, v), rel=1e-14)
    assert result.p_value == pytest.approx(stats.f.sf(9.5 / 6.5, 2, v), rel=1e-12)


def test_d3_with_pooled_estimates_as_good_as_the_own_is_the_mean_lr_over_k():
    ll, ll0 = np.array([-10.0, -11.0, -12.0]), np.array([-13.0, -14.5, -14.0])
    result = d3(ll, ll, ll0, ll0, 2)
    assert result.riv == 0 and np.isinf(result.df2)
    assert result.statistic == pytest.approx(np.mean(-2 * (ll0 - ll)) / 2, rel=1e-14)


@pytest.mark.parametrize("test", [lambda: d2([1.0], 1), lambda: d3([1.0], [1.0], [0.5], [0.5], 1)])
def test_one_imputation_is_refused(test):
    with pytest.raises(ValueError, match="at least 2 imputations"):
        test()


def small_data(seed: int = 3) -> pd.DataFrame:
    """Two-level data with a random slope: 12 groups of 4 to 7."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), rng.integers(4, 8, 12))
    x = rng.normal(size=len(g))
    y = 1 + 0.5 * x + rng.normal(size=12)[g] + 0.4 * rng.normal(size=12)[g] * x + rng.normal(size=len(g))
    return pd.DataFrame({"g": g, "x": x, "z": rng.normal(size=len(g)), "y": y})


def test_loglik_at_is_the_marginal_normal_density():
    """Against scipy's multivariate normal density, group by group, at parameters no fit chose."""
    data = small_data()
    design = Design(data, parse_formula("y ~ x + z + (1 + x | g)"))
    beta, cov_re, sigma2 = np.array([0.9, 0.4, -0.1]), np.array([[0.8, -0.2], [-0.2, 0.3]]), 1.3
    lam = relative_factor(cov_re / sigma2)
    ours = loglik_at(lam[np.tril_indices(2)], beta, sigma2, cross_products(design))
    expected = 0.0
    for level in design.levels:
        rows = design.groups == level
        Z = design.Z[rows]
        expected += stats.multivariate_normal(design.X[rows] @ beta, Z @ cov_re @ Z.T + sigma2 * np.eye(rows.sum())
                                              ).logpdf(design.y[rows])
    assert ours == pytest.approx(expected, rel=1e-12)


def test_loglik_at_an_ml_fits_own_estimates_is_its_loglik():
    data = small_data()
    fit = FitRecord.from_fit(fit_mixed(data, "y ~ x + (1 + x | g)", reml=False))
    pooled = PooledParameters.of([fit])
    assert loglik_at_parameters(data, "y ~ x + (1 + x | g)", pooled) == pytest.approx(fit.raw["loglik"], rel=1e-12)


def test_loglik_at_a_zero_variance():
    """A pooled covariance that is singular (a variance at zero): the likelihood is still defined."""
    cp = CrossProducts.of(np.array([1.0, 2.0, 0.5, 1.5]), np.ones((4, 1)), np.ones((4, 1)),
                          [np.array([0, 1]), np.array([2, 3])])
    ours = loglik_at(np.array([0.0]), np.array([1.25]), 0.4, cp)
    assert ours == pytest.approx(stats.norm(1.25, np.sqrt(0.4)).logpdf([1.0, 2.0, 0.5, 1.5]).sum(), rel=1e-12)


FULL = parse_formula("y ~ x + z + x:z + (1 + x | g)")


@pytest.mark.parametrize("nested, problem", [
    ("y ~ x + (1 + x | g)", None),
    ("y ~ x*z + (1 | g)", None),                         # a*b is a + b + a:b: the same fixed terms, no slope
    ("y ~ z:x + x + (1 | g)", None),                      # z:x is x:z
    ("y ~ 0 + x + (x | g)", None),                        # no intercept: a subset too
    ("y ~ x + w + (1 | g)", "its fixed terms ['w'] are not in model.formula"),
    ("y ~ x + I(x^2) + (1 | g)", "its fixed terms ['I(x ** 2)'] are not in model.formula"),
    ("y ~ x + (1 + z | g)", "its random terms ['z'] are not in model.formula's (1 + ... | g)"),
    ("w ~ x + (1 | g)", "its response 'w' is not model.formula's 'y'"),
    ("y ~ x + (1 | h)", "its grouping factor 'h' is not model.formula's 'g'"),
    ("y ~ x*z + (1 + x | g)", "it is model.formula itself"),
])
def test_nesting(nested, problem):
    found = nesting_problem(FULL, parse_formula(nested))
    assert found == problem if problem is None else found.startswith(problem)


def test_reml_refusals():
    assert reml_problem("D3", False, True) is None and reml_problem("D2", False, True) is None
    assert reml_problem("D2", True, False) is None                   # random terms alone: REML LRs compare
    assert reml_problem("D2", True, True).startswith("D2 compares models with different fixed terms")
    assert reml_problem("D3", True, True).endswith("set model.reml: false")
    assert reml_problem("D3", True, False).endswith("or ask for methods: [D2] (REML likelihoods of the same "
                                                    "fixed terms)")


def fake_fit(loglik: float, npar: int, reml: bool = False, label: str = "1") -> FitRecord:
    return FitRecord.from_fit({"loglik": loglik, "npar": npar, "reml": reml, "label": label})


def test_a_negative_lr_statistic_is_zero_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="mlmi.pool.compare"):
        d = lr_statistics([fake_fit(-10.0, 5, label="1"), fake_fit(-10.0, 5, label="2")],
                          [fake_fit(-10.5, 4), fake_fit(-9.9, 4)])
    assert d.tolist() == [1.0, 0.0]
    assert "imputations ['2'] better than the analysis model" in caplog.text


def test_equal_logliks_to_all_equal_are_zero():
    assert lr_statistics([fake_fit(-1000.0, 5)], [fake_fit(-1000.0 - 1e-6, 4)]).tolist() == [0.0]


def test_the_pool_refuses_a_comparison_that_is_not_smaller_or_needs_ml():
    comparison = {"name": "c", "formula": "y ~ x + (1 | g)", "methods": ["D2"]}
    with pytest.raises(ComparisonError, match="pooling.compare 'c': the comparison model has 5 parameters"):
        comparison_tests([fake_fit(-1.0, 5)] * 2, [comparison], {"c": [fake_fit(-2.0, 5)] * 2}, None,
                         "y ~ x + z + (1 | g)")
    with pytest.raises(ComparisonError, match="pooling.compare 'c': D2 compares models with different fixed"):
        comparison_tests([fake_fit(-1.0, 5, reml=True)] * 2, [comparison], {"c": [fake_fit(-2.0, 4)] * 2}, None,
                         "y ~ x + z + (1 | g)")
