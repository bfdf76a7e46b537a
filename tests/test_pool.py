"""Rubin's rules against mice::pool.scalar (mice 3.15.0) and closed forms."""
import numpy as np
import pandas as pd
import pytest

from mlmi.fit.record import FitRecord
from mlmi.pool.rubin import barnard_rubin_df, negligible_between, pool, pool_long

# mice::pool.scalar(Q, U, n, k) printed with %.15g; dfcom = n - k. Columns:
# qbar, ubar, b, t, df, riv, fmi.
MICE = [
    ([1, 2, 4], [0.5, 0.6, 0.7], 10, [2.33333333333333, 0.6, 2.33333333333333, 3.71111111111111,
                                      0.923898948679018, 5.18518518518519, 0.920729474766554]),
    ([0.3, 0.5], [0.04, 0.06], np.inf, [0.4, 0.05, 0.02, 0.08, 7.11111111111111, 0.6, 0.498626373626374]),
]


def long_table(q, u, term="x"):
    return pd.DataFrame({"imputation": range(1, len(q) + 1), "term": term, "estimate": q,
                         "std_error": np.sqrt(u)})


@pytest.mark.parametrize("q, u, dfcom, expected", MICE)
def test_pool_long_matches_mice_pool_scalar(q, u, dfcom, expected):
    row = pool_long(long_table(q, u), dfcom).iloc[0]
    got = [row.estimate, row.ubar, row.b, row.t, row.df, row.riv, row.fmi]
    np.testing.assert_allclose(got, expected, rtol=1e-12)   # R printed 15 significant digits


def test_hand_computation_m3():
    # Q = 1, 2, 4; U = .5, .6, .7; dfcom = 10, worked by hand with fractions.
    row = pool_long(long_table([1, 2, 4], [0.5, 0.6, 0.7]), 10).iloc[0]
    b = (16 / 9 + 1 / 9 + 25 / 9) / 2                      # = 7/3
    t = 0.6 + (4 / 3) * b
    lam = (4 / 3) * b / t
    dfold, dfobs = 2 / lam**2, 11 / 13 * 10 * (1 - lam)
    assert row.b == pytest.approx(7 / 3, rel=1e-14)
    assert row.t == pytest.approx(t, rel=1e-14)
    assert row["lambda"] == pytest.approx(lam, rel=1e-14)
    assert row.df == pytest.approx(dfold * dfobs / (dfold + dfobs), rel=1e-12)
    assert row.std_error == pytest.approx(np.sqrt(t), rel=1e-14)
    assert row.statistic == pytest.approx((7 / 3) / np.sqrt(t), rel=1e-14)


def test_b_zero_gives_dfobs_without_division_by_zero():
    with np.errstate(all="raise"):
        row = pool_long(long_table([2, 2, 2], [0.1, 0.2, 0.3]), 100).iloc[0]
    assert row.b == 0 and row["lambda"] == 0 and row.riv == 0
    assert row.df == pytest.approx(101 / 103 * 100, rel=1e-14)      # dfobs with lambda = 0
    assert row.fmi == pytest.approx(2 / (row.df + 3), rel=1e-14)
    assert row.std_error == pytest.approx(np.sqrt(0.2), rel=1e-14)


def test_m2_intervals_and_p_values_use_student_t():
    from scipy import stats
    row = pool_long(long_table([0.3, 0.5], [0.04, 0.06]), np.inf).iloc[0]
    # b = 0.02, t = 0.05 + 1.5 * 0.02 = 0.08, lambda = 0.03 / 0.08 = 0.375, df = dfold = 1 / lambda^2
    assert row.df == pytest.approx(1 / 0.375**2, rel=1e-14)
    half = stats.t.ppf(0.975, row.df) * np.sqrt(0.08)
    assert row.conf_low == pytest.approx(0.4 - half, rel=1e-12)
    assert row.conf_high == pytest.approx(0.4 + half, rel=1e-12)
    assert row.p_value == pytest.approx(2 * stats.t.sf(0.4 / np.sqrt(0.08), row.df), rel=1e-12)
    assert row.m == 2


def test_barnard_rubin_limits():
    # dfcom = inf: the classical Rubin df, (m - 1) / lambda^2.
    assert barnard_rubin_df(5, 0.1, 1.0, np.inf) == pytest.approx(4 / 0.12**2, rel=1e-14)
    # huge dfcom approaches that limit; small lambda approaches dfobs.
    assert barnard_rubin_df(5, 0.1, 1.0, 1e12) == pytest.approx(4 / 0.12**2, rel=1e-6)
    assert barnard_rubin_df(5, 1e-9, 1.0, 50) == pytest.approx(51 / 53 * 50, rel=1e-6)


def test_term_order_is_kept_and_m_below_2_fails():
    table = pd.concat([long_table([1, 2], [1, 1], "z"), long_table([3, 4], [1, 1], "a")])
    assert list(pool_long(table, 10)["term"]) == ["z", "a"]
    with pytest.raises(ValueError, match="at least 2 imputations"):
        pool_long(long_table([1], [1]), 10)
    with pytest.raises(ValueError, match="lacks columns"):
        pool_long(long_table([1, 2], [1, 1]).drop(columns="std_error"), 10)


def test_pool_of_fit_records_takes_dfcom_and_warns_on_negligible_b(caplog):
    raw = {"dfcom": 96, "dropped": [], "fixed_effects": [{"term": "x", "estimate": 1.0, "std_error": 0.5,
                                                          "statistic": 2.0}]}
    fits = [FitRecord.from_fit(raw) for _ in range(3)]
    pooled = pool(fits)
    assert pooled["dfcom"].iloc[0] == 96 and pooled["m"].iloc[0] == 3
    assert "negligible" in caplog.text and "'x'" in caplog.text
    assert negligible_between(pooled) and not negligible_between(pooled.assign(riv=0.5))
    fits[1] = FitRecord.from_fit({**raw, "dfcom": 95})
    with pytest.raises(ValueError, match="disagree"):
        pool(fits)


def test_tiny_between_variance_gives_a_finite_df():
    # lambda^2 underflows to 0 for lambda below ~1e-154; df must still be dfobs, not inf/inf.
    assert barnard_rubin_df(2, [1e-200], [1.0], 10.0)[0] == pytest.approx(11 / 13 * 10, rel=1e-14)


def test_fits_that_dropped_different_aliased_columns_are_not_pooled():
    """Terms lme4 dropped as aliased are absent alike from every fit, or pooling stops naming who dropped what."""
    def fit(dropped, terms):
        return FitRecord.from_fit({"dfcom": 96, "dropped": dropped,
                                   "fixed_effects": [{"term": t, "estimate": 1.0 + k, "std_error": 0.5, "statistic": 2.0}
                                                     for k, t in enumerate(terms)]})
    same = [fit(["x2"], ["(Intercept)", "x"]), fit(["x2"], ["(Intercept)", "x"])]
    assert pool(same)["term"].tolist() == ["(Intercept)", "x"]
    differ = [fit(["x2"], ["(Intercept)", "x"]), fit([], ["(Intercept)", "x", "x2"]), fit(["x2"], ["(Intercept)", "x"])]
    with pytest.raises(ValueError) as raised:
        pool(differ, labels=["1", "2", "5"])
    assert str(raised.value) == ("the fits dropped different aliased fixed-effect columns (imputations 1, 5: 'x2'; "
                                 "imputation 2: none), so their terms differ and cannot be pooled; remove those "
                                 "columns from model.formula")
