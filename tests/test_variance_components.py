"""Variance components with intervals (issue 17, item 4): one fit's Wald covariance of its variance parameters on
the log-SD / Fisher-z scale (mlmi.fit.vc_wald) against closed forms, and Rubin's rules on that scale
(mlmi.pool.variance_components) against a hand computation. tests/parity/test_r2_vc.py holds the covariance to R's
numerical Hessian of lme4's deviance; config/studies/variance_components.yaml shows the intervals' coverage."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlmi.fit.lmer import fit_mixed
from mlmi.fit.record import FitRecord
from mlmi.fit.vc_wald import jacobian, parameter_names, transformed
from mlmi.pool.variance_components import VC_COLUMNS, by_imputation, pool_variance_components, wald_intervals


def balanced(groups: int, size: int, tau: float, sigma: float, seed: int) -> pd.DataFrame:
    """A balanced one-way layout: ``groups`` groups of ``size``, group effects of SD tau, residual SD sigma."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), size)
    return pd.DataFrame({"g": g, "y": 3.0 + tau * rng.normal(size=groups)[g] + sigma * rng.normal(size=len(g))})


@pytest.mark.parametrize("reml", [True, False])
def test_balanced_one_way_matches_the_closed_form(reml):
    """Balanced one-way: the (restricted) likelihood factors into the within sum of squares (a (n - 1) df, scale
    sigma^2) and the between one (k df, scale lambda = sigma^2 + n tau^2; k = a - 1 for REML, a for ML), so
    Var(sigma2) = 2 sigma^4 / (a (n - 1)), Var(lambda) = 2 lambda^2 / k, independent; with tau^2 = (lambda - sigma^2)/n:
    Var(log sigma) = 1 / (2 a (n - 1)), Var(log tau) = (2 lambda^2 / k + 2 sigma^4 / (a (n - 1))) / (4 n^2 tau^4),
    Cov(log tau, log sigma) = -sigma^2 / (2 n tau^2 a (n - 1))."""
    a, n = 25, 8
    data = balanced(a, n, tau=1.0, sigma=2.0, seed=3)
    fit = fit_mixed(data, "y ~ 1 + (1 | g)", reml=reml)
    record = fit["variance_parameters"]
    tau2, sigma2 = fit["random_effects"]["sd"]["(Intercept)"] ** 2, fit["sigma"] ** 2
    lam, k = sigma2 + n * tau2, a - 1 if reml else a
    expected = np.array([[(2 * lam**2 / k + 2 * sigma2**2 / (a * (n - 1))) / (4 * n**2 * tau2**2),
                          -sigma2 / (2 * n * tau2 * a * (n - 1))],
                         [-sigma2 / (2 * n * tau2 * a * (n - 1)), 1 / (2 * a * (n - 1))]])
    assert record["terms"] == ["sd__(Intercept)", "sd__Observation"] and record["scales"] == ["log", "log"]
    np.testing.assert_allclose(record["estimate"], np.log([np.sqrt(tau2), np.sqrt(sigma2)]), rtol=1e-12)
    np.testing.assert_allclose(record["vcov"], expected, rtol=1e-5)


@pytest.mark.parametrize("theta, random_terms", [
    (np.array([0.9, -0.3, 0.5, 0.2, 0.4, 0.7]), [("g", ["(Intercept)", "x", "z"])]),
    # two terms, as (1 + x | g) + (1 | h) gives them: theta is g's lower triangle, then h's
    (np.array([0.9, -0.3, 0.5, 0.6]), [("g", ["(Intercept)", "x"]), ("h", ["(Intercept)"])]),
])
def test_jacobian_is_the_derivative_of_the_transform(theta, random_terms):
    """d phi / d (theta, log sigma^2) against central differences of ``transformed``."""
    point, k = np.append(theta, 0.3), len(theta) + 1
    rows = len(transformed(theta, 1.0, random_terms))
    numeric = np.empty((rows, k))
    for j in range(k):
        step = np.zeros(k)
        step[j] = 1e-6
        up, down = point + step, point - step
        numeric[:, j] = (transformed(up[:-1], np.exp(up[-1]), random_terms)
                         - transformed(down[:-1], np.exp(down[-1]), random_terms)) / 2e-6
    np.testing.assert_allclose(jacobian(theta, random_terms), numeric, atol=1e-8)


def test_parameter_names_are_broom_mixeds():
    assert parameter_names(["(Intercept)", "x", "z"]) == [
        "sd__(Intercept)", "sd__x", "sd__z", "cor__(Intercept).x", "cor__(Intercept).z", "cor__x.z"]


def test_crossed_factors_have_an_interval_for_each_factors_sd():
    """Penicillin (crossed plate x sample): one row per (group, term), the estimates the fit's own SDs, and the
    intervals on the log scale from the two-term Wald covariance."""
    data = pd.read_csv(Path(__file__).parent / "data" / "penicillin.csv")
    fit = fit_mixed(data, "diameter ~ 1 + (1 | plate) + (1 | sample)")
    record = fit["variance_parameters"]
    assert record["groups"] == ["plate", "sample", "Residual"] and record["problem"] is None
    table = pool_variance_components([FitRecord.from_fit(fit)] * 2)
    assert list(zip(table["group"], table["term"])) == [("plate", "sd__(Intercept)"), ("sample", "sd__(Intercept)"),
                                                        ("Residual", "sd__Observation")]
    sds = [term["sd"]["(Intercept)"] for term in fit["random_effects"]] + [fit["sigma"]]
    np.testing.assert_allclose(table["estimate"], sds, rtol=1e-12)
    assert (table["conf_low"] < table["estimate"]).all() and (table["estimate"] < table["conf_high"]).all()


def test_a_singular_fit_has_no_interval():
    """Groups with equal means: the SD on its bound 0, NaN covariance, a reason."""
    data = balanced(12, 5, tau=0.0, sigma=1.0, seed=5)
    data["y"] -= data.groupby("g")["y"].transform("mean")
    fit = FitRecord.from_fit(fit_mixed(data, "y ~ 1 + (1 | g)", reml=True))
    assert fit.raw["convergence"]["singular"]
    record = fit.raw["variance_parameters"]
    assert record["vcov"] is None and "singular" in record["problem"]
    assert wald_intervals(fit)[["conf_low", "conf_high"]].isna().all().all()


def record(estimates: list[float], variances: list[float], singular: bool = False) -> FitRecord:
    """The parts of a fit record the pooling reads: sd__(Intercept), cor__(Intercept).x, sd__Observation; a
    ``singular`` fit's have no covariance."""
    return FitRecord.from_fit({"random_effects": {"group": "g"}, "variance_parameters": {
        "groups": ["g", "g", "Residual"], "terms": ["sd__(Intercept)", "cor__(Intercept).x", "sd__Observation"],
        "scales": ["log", "atanh", "log"], "estimate": estimates,
        "vcov": None if singular else np.diag(variances).tolist(), "problem": "singular fit" if singular else None}})


def test_pooling_is_rubins_rules_on_the_transformed_scale():
    """Three imputations by hand: qbar, ubar, b, t, Rubin's df (dfcom infinite), t-interval, back-transformed."""
    fits = [record([0.4, -0.5, 1.8], [0.01, 0.04, 0.0004]), record([0.5, -0.3, 1.82], [0.012, 0.05, 0.0004]),
            record([0.45, -0.4, 1.81], [0.011, 0.045, 0.0004])]
    table = pool_variance_components(fits)
    assert list(table.columns) == VC_COLUMNS
    assert list(table["group"]) == ["g", "g", "Residual"]
    phi = np.array([fit.raw["variance_parameters"]["estimate"] for fit in fits])
    qbar, ubar, b = phi.mean(axis=0), np.array([0.011, 0.045, 0.0004]), phi.var(axis=0, ddof=1)
    t = ubar + 4 / 3 * b
    df = 2 / (4 / 3 * b / t) ** 2
    half = stats.t.ppf(0.975, df) * np.sqrt(t)
    back = [np.exp, np.tanh, np.exp]
    for i, (row, f) in enumerate(zip(table.itertuples(index=False), back)):
        assert row.scaled_estimate == pytest.approx(qbar[i], rel=1e-12)
        assert row.df == pytest.approx(df[i], rel=1e-10)
        assert row.estimate == pytest.approx(f(qbar[i]), rel=1e-12)
        assert row.conf_low == pytest.approx(f(qbar[i] - half[i]), rel=1e-10)
        assert row.conf_high == pytest.approx(f(qbar[i] + half[i]), rel=1e-10)
    assert table["std_error"].iloc[0] == pytest.approx(np.exp(qbar[0]) * np.sqrt(t[0]), rel=1e-12)
    assert table["std_error"].iloc[1] == pytest.approx((1 - np.tanh(qbar[1]) ** 2) * np.sqrt(t[1]), rel=1e-12)


def test_equal_imputations_give_the_normal_wald_interval():
    """b = 0: infinite df, so the pooled interval is one fit's normal interval (wald_intervals)."""
    fits = [record([0.4, -0.5, 1.8], [0.01, 0.04, 0.0004])] * 3
    pooled = pool_variance_components(fits)
    single = wald_intervals(fits[0])
    assert (pooled["df"] > 1e12).all()                        # infinite but for rounding in b
    for column in ("estimate", "conf_low", "conf_high", "std_error"):
        np.testing.assert_allclose(pooled[column], single[column], rtol=1e-12)
    assert single["conf_low"].iloc[0] == pytest.approx(np.exp(0.4 - stats.norm.ppf(0.975) * 0.1), rel=1e-12)


def test_one_singular_imputation_leaves_that_pool_without_an_interval():
    fits = [record([0.4, -0.5, 1.8], [0.01, 0.04, 0.0004]), record([0.5, -0.3, 1.82], [1.0] * 3, singular=True)]
    assert by_imputation(fits)["std_error"].isna().sum() == 3
    assert pool_variance_components(fits)[["conf_low", "conf_high"]].isna().all().all()


def test_a_record_without_variance_parameters_gives_its_estimates_without_an_interval():
    """A GLMM's record has SDs and correlations but no variance_parameters (mlmi.fit.vc_wald is a linear mixed
    model's), and no residual SD."""
    glmm = FitRecord.from_fit({"family": "binomial", "link": "logit", "sigma": 1.0, "random_effects": {
        "group": "g", "terms": ["(Intercept)", "x"], "sd": {"(Intercept)": 1.5, "x": 0.5}, "cor": {"(Intercept).x": -0.3}}})
    long = by_imputation([glmm])
    assert list(long["term"]) == ["sd__(Intercept)", "sd__x", "cor__(Intercept).x"]
    np.testing.assert_allclose(long["estimate"], [np.log(1.5), np.log(0.5), np.arctanh(-0.3)])
    assert long["std_error"].isna().all()
