"""miceforest imputation: shape, dtypes, exclusions, categories and thread-independence."""
import numpy as np
import pandas as pd
import pytest

from mlmi.impute import impute_once
from mlmi.seeds import int_seed_for, rng_for

SETTINGS = {"iterations": 2, "exclude": ["g", "gmean"], "categorical": ["flag"]}


@pytest.fixture(scope="module")
def incomplete():
    rng = np.random.default_rng(5)
    n = 600
    data = pd.DataFrame({"g": np.repeat(np.arange(30), 20), "flag": rng.binomial(1, 0.3, n),
                         "x": rng.normal(size=n), "count": rng.integers(100, 900, n), "y": rng.normal(size=n)})
    data["gmean"] = data.groupby("g")["x"].transform("mean")
    data["flag"] = data["flag"].astype("Int64")
    data["count"] = data["count"].astype("Int64")
    for column in ("flag", "x", "count"):
        data.loc[rng.random(n) < 0.1, column] = pd.NA if column != "x" else np.nan
    data.loc[3, "gmean"] = np.nan             # an excluded column keeps its hole
    return data


@pytest.fixture(scope="module")
def completed(incomplete):
    return impute_once(incomplete, seed=11, threads=1, **SETTINGS)[0]


def test_same_rows_order_columns_dtypes(incomplete, completed):
    assert list(completed.columns) == list(incomplete.columns)
    assert completed.dtypes.to_dict() == incomplete.dtypes.to_dict()
    assert completed.index.equals(incomplete.index)
    observed = incomplete["x"].notna()
    pd.testing.assert_series_equal(completed.loc[observed, "x"], incomplete.loc[observed, "x"])


def test_imputed_columns_complete_excluded_untouched(incomplete, completed):
    assert not completed[["flag", "x", "count", "y"]].isna().any().any()
    pd.testing.assert_series_equal(completed["gmean"], incomplete["gmean"])
    pd.testing.assert_series_equal(completed["g"], incomplete["g"])
    assert set(completed["flag"].unique()) <= {0, 1}             # a category, never a fraction
    imputed = completed.loc[incomplete["count"].isna(), "count"]
    assert set(imputed) <= set(incomplete["count"].dropna())      # mean matching draws observed values


def test_input_is_not_modified(incomplete):
    before = incomplete.copy()
    impute_once(incomplete, seed=11, threads=1, **SETTINGS)
    pd.testing.assert_frame_equal(incomplete, before)


def test_one_and_two_threads_agree_and_seeds_matter(incomplete, completed):
    pd.testing.assert_frame_equal(impute_once(incomplete, seed=11, threads=2, **SETTINGS)[0], completed)
    assert not impute_once(incomplete, seed=12, threads=1, **SETTINGS)[0].equals(completed)


def test_chains_summarise_the_imputed_cells_per_iteration(incomplete, completed):
    _, chains = impute_once(incomplete, seed=11, threads=1, **SETTINGS)
    assert list(chains["iteration"].unique()) == [0, 1, 2]                 # initialisation + 2 iterations
    assert list(chains["variable"].unique()) == ["flag", "x", "count"]     # imputed columns, gmean excluded
    last = chains[chains["iteration"] == 2].set_index("variable")
    holes = incomplete["x"].isna()
    assert last.loc["x", "mean"] == pytest.approx(completed.loc[holes, "x"].mean(), rel=1e-12)
    assert last.loc["x", "sd"] == pytest.approx(completed.loc[holes, "x"].std(), rel=1e-12)


def test_unknown_columns_are_named(incomplete):
    with pytest.raises(ValueError, match=r"imputation.exclude lists columns \['nope'\]"):
        impute_once(incomplete, seed=1, iterations=1, exclude=["nope"], categorical=[])


def test_seeds_depend_on_master_stage_and_k_only():
    seeds = [int_seed_for(20261123, "impute", k) for k in range(1, 6)]
    assert len(set(seeds)) == 5 and seeds == [int_seed_for(20261123, "impute", k) for k in range(1, 6)]
    assert int_seed_for(1, "impute", 1) != int_seed_for(2, "impute", 1)
    assert rng_for(7, "simulate").random() == rng_for(7, "simulate").random() != rng_for(7, "ampute").random()
