"""MCAR amputation, the vignette's add_NA: rates, dtypes, untouched input, errors."""
import numpy as np
import pandas as pd
import pytest

from mlmi.ampute import ampute_mcar

N = 100_000
PROB = {"minority": 0.05, "ses": 0.2, "size": 0.5}


@pytest.fixture(scope="module")
def complete():
    rng = np.random.default_rng(11)
    return pd.DataFrame({"schid": np.repeat(np.arange(1000), N // 1000),
                         "minority": rng.integers(0, 2, N), "ses": rng.normal(size=N),
                         "size": rng.integers(100, 2714, N), "mathach": rng.normal(12, 7, N)})


@pytest.fixture(scope="module")
def amputed(complete):
    return ampute_mcar(complete, PROB, np.random.default_rng(12))


@pytest.mark.parametrize("column, p", PROB.items())
def test_rates_within_binomial_tolerance(amputed, column, p):
    # The count of holes is Binomial(N, p): within 4 of its SDs.
    assert abs(amputed[column].isna().sum() - N * p) <= 4 * np.sqrt(N * p * (1 - p))


def test_observed_cells_keep_their_values(complete, amputed):
    for column in PROB:
        kept = amputed[column].notna()
        assert (amputed.loc[kept, column].to_numpy(dtype=float)
                == complete.loc[kept, column].to_numpy(dtype=float)).all()


def test_unlisted_columns_identical(complete, amputed):
    pd.testing.assert_frame_equal(amputed[["schid", "mathach"]], complete[["schid", "mathach"]])


def test_input_unchanged(complete):
    before = complete.copy()
    ampute_mcar(complete, PROB, np.random.default_rng(3))
    pd.testing.assert_frame_equal(complete, before)


def test_dtypes(amputed):
    assert str(amputed["minority"].dtype) == "Int64"     # 0/1 stays integer, not 0.0/1.0
    assert str(amputed["size"].dtype) == "Int64"
    assert amputed["ses"].dtype == np.float64
    assert amputed["schid"].dtype == np.int64
    assert set(amputed["minority"].dropna()) == {0, 1}


def test_no_holes_keeps_the_dtype(complete):
    out = ampute_mcar(complete, {"minority": 0.0}, np.random.default_rng(4))
    pd.testing.assert_frame_equal(out, complete)


def test_reproducible_and_order_matters(complete):
    first = ampute_mcar(complete, PROB, np.random.default_rng(5))
    pd.testing.assert_frame_equal(first, ampute_mcar(complete, PROB, np.random.default_rng(5)))
    reordered = dict(reversed(list(PROB.items())))
    assert not first.isna().equals(ampute_mcar(complete, reordered, np.random.default_rng(5)).isna())


@pytest.mark.parametrize("prob, column", [({"female": 0.1}, "female"),
                                          ({"ses": 1.0}, "ses"),
                                          ({"ses": -0.1}, "ses"),
                                          ({"minority": 0.1, "size": float("nan")}, "size"),
                                          ({"size": "0.1"}, "size")])
def test_bad_input_is_an_error(complete, prob, column):
    with pytest.raises(ValueError, match=column):
        ampute_mcar(complete, prob, np.random.default_rng(0))
