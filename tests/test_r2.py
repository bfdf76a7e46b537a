"""Multilevel R² (issue 17, item 3) against hand computations; tests/parity/test_r2_vc.py holds it to
mitml::multilevelR2 and performance::r2_nakagawa on lme4 fits."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi.fit.lmer import fit_mixed
from mlmi.fit.r2 import MEASURES, fit_r2, measures, variance_parts
from mlmi.fit.record import FitRecord
from mlmi.pool.r2 import pool_r2


def test_variance_parts_by_hand():
    """Four rows, one slope: var(X beta) with divisor n - 1, tr(T (cov(Z) + mean mean')) and sigma^2."""
    x = np.array([0.0, 1.0, 2.0, 5.0])
    X = np.column_stack([np.ones(4), x])
    Z = X.copy()
    T = np.array([[2.0, 0.3], [0.3, 0.5]])
    parts = variance_parts(X, np.array([1.0, 2.0]), [Z], [T], sigma2=4.0)
    var_x = np.var(x, ddof=1)                                    # 14/3
    assert parts["var_fixed"] == pytest.approx(4 * var_x)
    assert parts["var_random"] == pytest.approx(2.0 + 2 * 0.3 * x.mean() + 0.5 * (x.mean() ** 2 + var_x))
    assert parts["sigma2"] == 4.0


def test_measures_by_hand():
    parts = {"var_fixed": 2.0, "var_random": 1.0, "sigma2": 5.0, "tau00": 0.8}
    null = {"sigma2": 6.0, "tau00": 1.6}
    r2 = measures(parts, null, random_intercept=True)
    assert r2 == pytest.approx({"r2_marginal": 0.25, "r2_conditional": 0.375, "r2_rb1": 1 - 5 / 6,
                                "r2_rb2": 0.5, "r2_sb": 1 - 5.8 / 7.6})
    without = measures(parts, null, random_intercept=False)
    assert np.isnan(without["r2_rb2"]) and np.isnan(without["r2_sb"]) and without["r2_rb1"] == r2["r2_rb1"]


def test_fit_r2_refits_the_null_model_with_the_same_method():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=300)
    data = pd.DataFrame({"g": g, "x": x, "y": 1 + 0.8 * x + rng.normal(size=30)[g] + rng.normal(size=300)})
    for reml in (True, False):
        record = fit_mixed(data, "y ~ x + (1 | g)", reml=reml)
        null = fit_mixed(data, "y ~ 1 + (1 | g)", reml=reml)
        r2 = fit_r2(data, FitRecord.from_fit(record))
        assert r2["null"]["formula"] == "y ~ 1 + (1 | g)"
        assert r2["null"]["sigma2"] == pytest.approx(null["sigma"] ** 2, rel=1e-12)
        assert r2["r2_rb1"] == pytest.approx(1 - record["sigma"] ** 2 / null["sigma"] ** 2, rel=1e-12)
        assert 0 < r2["r2_marginal"] < r2["r2_conditional"] < 1


def test_pool_r2_is_the_mean_over_imputations():
    fits = [FitRecord.from_fit({"r2": dict(zip(MEASURES, values))}) for values in
            [(0.2, 0.4, 0.1, 0.3, 0.15), (0.3, 0.5, 0.2, np.nan, 0.25)]]
    table = pool_r2(fits, labels=["1", "3"])
    assert list(table["imputation"]) == ["1", "3", "pooled"]
    pooled = table.iloc[-1]
    assert pooled["r2_marginal"] == pytest.approx(0.25) and pooled["r2_sb"] == pytest.approx(0.2)
    assert np.isnan(pooled["r2_rb2"])


def test_a_record_without_r2_gives_nan_and_a_warning(caplog):
    fits = [FitRecord.from_fit({"r2": dict(zip(MEASURES, (0.2, 0.4, 0.1, 0.3, 0.15)))}), FitRecord.from_fit({})]
    with caplog.at_level("WARNING"):
        table = pool_r2(fits)
    assert table.iloc[1, 1:].isna().all() and table.iloc[2, 1:].isna().all()
    assert "fit records 2 hold no R²" in caplog.text


@pytest.mark.parametrize("formula, conditional, marginal", [
    ("y ~ x + w + (1 | school/class)", 0.700352642445, 0.550550051573),
    ("y ~ x + w + (1 + x | school) + (1 | school:class)", 0.702456605116, 0.544380799861),
])
def test_several_random_terms_count_every_terms_variance(formula, conditional, marginal):
    """Nested three-level models against performance::r2_nakagawa (tests/data/r2_factors.R): the marginal and
    conditional R² within 1e-5 (performance averages z' T z over rows, mlmi takes cov(Z) with divisor n - 1, as
    mitml does: 2e-6 apart with a random slope); no null model of one grouping factor, so RB1, RB2 and SB are NaN."""
    data = pd.read_csv(Path(__file__).parent / "data" / "three_level.csv")
    r2 = fit_r2(data, FitRecord.from_fit(fit_mixed(data, formula)))
    assert r2["r2_conditional"] == pytest.approx(conditional, abs=1e-5)
    assert r2["r2_marginal"] == pytest.approx(marginal, abs=1e-5)
    assert r2["null"] is None and all(np.isnan(r2[name]) for name in ("r2_rb1", "r2_rb2", "r2_sb"))
