"""miceforest imputation: shape, dtypes, exclusions, categories and thread-independence."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlmi.impute.miceforest import (TRACE_COLUMNS, _cluster_bootstrap, _cluster_predictors, impute, impute_miceforest,
                         impute_once)
from mlmi.impute.models import method_settings
from mlmi.run.seeds import int_seed_for, rng_for

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


LEVELS = {"iterations": 2, "exclude": ["g"], "categorical": ["kind"], "level2": ["size", "kind"],
          "cluster_means": {"gmean": "x"}}


@pytest.fixture(scope="module")
def two_level():
    """30 clusters of 20: level-2 size and kind missing in a few whole clusters and in single cells of
    others, x missing in 20% of cells (one cluster wholly), gmean the cluster mean of the complete x."""
    rng = np.random.default_rng(8)
    g = np.repeat(np.arange(30), 20)
    size = rng.integers(100, 900, 30)
    data = pd.DataFrame({"g": g, "size": size[g], "kind": rng.binomial(1, 0.4, 30)[g],
                         "x": rng.normal(size[g] / 300, 1.0), "y": rng.normal(size=600)})
    data["gmean"] = data.groupby("g")["x"].transform("mean")
    data = data.astype({"size": "Int64", "kind": "Int64"})
    data.loc[data["g"].isin([2, 5, 11]), "size"] = pd.NA          # whole clusters without a size
    data.loc[data["g"].isin([5, 19]), "kind"] = pd.NA
    data.loc[[41, 42, 300], "size"] = pd.NA                      # a cell here and there: the cluster knows it
    data.loc[rng.random(600) < 0.2, "x"] = np.nan
    data.loc[data["g"] == 7, "x"] = np.nan
    return data


def miceforest_levels(data, **switches):
    return impute_miceforest(data, "g", seed=4, threads=1, **LEVELS, **switches)


@pytest.mark.parametrize("switches", [{}, {"bootstrap": True, "cluster_predictors": True}])
def test_level2_columns_are_one_value_per_cluster(two_level, switches):
    completed, chains = miceforest_levels(two_level, **switches)
    assert not completed[["size", "kind", "x"]].isna().any().any()
    assert (completed.groupby("g")[["size", "kind"]].nunique() == 1).all().all()
    known = two_level.dropna(subset=["size"]).groupby("g")["size"].first()
    pd.testing.assert_series_equal(completed.groupby("g")["size"].first()[known.index], known)
    assert set(completed["size"]) <= set(two_level["size"].dropna())   # mean matching at cluster level
    assert completed.dtypes.to_dict() == two_level.dtypes.to_dict()
    assert {"size", "kind", "x"} == set(chains["variable"])          # level-2 chains are of cluster values


@pytest.mark.parametrize("switches", [{}, {"bootstrap": True, "cluster_predictors": True}])
def test_cluster_mean_column_is_the_mean_of_its_imputed_column(two_level, switches):
    completed, _ = miceforest_levels(two_level, **switches)
    pd.testing.assert_series_equal(completed["gmean"], completed.groupby("g")["x"].transform("mean"),
                                   check_names=False)
    assert not completed["gmean"].equals(two_level["gmean"])         # recomputed, not carried through


def test_bootstrap_and_cluster_predictors_change_the_draws_reproducibly(two_level):
    plain = miceforest_levels(two_level)[0]
    improved, chains = miceforest_levels(two_level, bootstrap=True, cluster_predictors=True)
    assert list(improved.columns) == list(two_level.columns)         # the added predictors are not returned
    assert not improved["x"].equals(plain["x"])
    again, chains_again = impute_miceforest(two_level, "g", seed=4, threads=2, bootstrap=True,
                                            cluster_predictors=True, **LEVELS)
    pd.testing.assert_frame_equal(again, improved)
    pd.testing.assert_frame_equal(chains_again, chains)
    last = chains[(chains["iteration"] == 2) & (chains["variable"] == "x")].iloc[0]
    assert last["mean"] == pytest.approx(improved.loc[two_level["x"].isna(), "x"].mean(), rel=1e-12)


def test_cluster_bootstrap_draws_whole_clusters():
    clusters = pd.Series(np.repeat([10, 20, 30, 40], [1, 2, 3, 4]))
    rows = _cluster_bootstrap(clusters, np.random.default_rng(1))
    drawn = clusters.iloc[rows]
    assert drawn.nunique() < 4 or len(rows) == 10                   # with replacement
    for cluster, count in drawn.value_counts().items():
        assert count % (clusters == cluster).sum() == 0              # all of a cluster's rows, each time drawn
    assert (rows == _cluster_bootstrap(clusters, np.random.default_rng(1))).all()


def test_level_settings_name_their_key(two_level):
    with pytest.raises(ValueError, match=r"imputation.level2 lists columns \['nope'\]"):
        impute_miceforest(two_level, "g", seed=1, iterations=1, level2=["nope"])
    with pytest.raises(ValueError, match=r"imputation.cluster_means lists columns \['z'\]"):
        impute_miceforest(two_level, "g", seed=1, iterations=1, cluster_means={"gmean": "z"})


def test_impute_dispatches_by_method(two_level, monkeypatch):
    """miceforest with the formula's grouping factor and an empty trace; multilevel is mlmi.impute.multilevel's
    sampler, given the config's settings as they are."""
    settings = {**LEVELS, "bootstrap": False, "cluster_predictors": False}
    completed, chains, trace = impute("miceforest", two_level, "y ~ x + size + (1 + x | g)", seed=4, **settings)
    pd.testing.assert_frame_equal(completed, miceforest_levels(two_level)[0])
    assert list(trace.columns) == TRACE_COLUMNS and trace.empty
    multilevel = pytest.importorskip("mlmi.impute.multilevel")
    seen = {}
    monkeypatch.setattr(multilevel, "impute_multilevel", lambda data, formula, **kw: seen.update(kw, formula=formula))
    config = {"method": "multilevel", "burn_in": 7, "iterations": 5, "exclude": ["g"], "categorical": [],
              "level2": ["size"], "cluster_means": {"gmean": "x"}, "bootstrap": True, "cluster_predictors": True}
    impute("multilevel", two_level, "y ~ x + (1 | g)", seed=3, **method_settings(config))
    assert seen == {"formula": "y ~ x + (1 | g)", "seed": 3, "burn_in": 7, "exclude": ["g"], "categorical": [],
                    "level2": ["size"], "cluster_means": {"gmean": "x"}}


@pytest.mark.parametrize("method", ["miceforest", "multilevel"])
def test_every_method_keeps_level2_and_cluster_means(two_level, method):
    """Whatever the method: level-2 columns constant within each cluster, the cluster mean recomputed."""
    if method == "multilevel":
        pytest.importorskip("mlmi.impute.multilevel")
    config = {**LEVELS, "method": method, "burn_in": 200, "bootstrap": True, "cluster_predictors": True,
              "exclude": [] if method == "multilevel" else ["g"]}     # the sampler's clusters are g
    completed, _, _ = impute(method, two_level, "y ~ x + size + gmean + (1 + x | g)", seed=9,
                             **method_settings(config))
    assert not completed[["size", "kind", "x"]].isna().any().any()
    assert (completed.groupby("g")[["size", "kind"]].nunique() == 1).all().all()
    pd.testing.assert_series_equal(completed["gmean"], completed.groupby("g")["x"].transform("mean"),
                                   check_names=False)


def test_other_grouping_factors_add_their_cluster_means_as_predictors(two_level):
    """Several grouping factors: the first is the clusters; each other factor (its columns' combinations)
    adds the mean of every level-1 column's observed values within it, computed here by hand."""
    data = two_level.assign(c=np.tile(np.repeat([1, 2], 10), 30))      # 2 classes a cluster, ids repeated
    predictors = _cluster_predictors(data, "g", [("c", "g")], ["x", "y"])
    assert list(predictors.columns) == ["cluster_mean__x", "cluster_mean__y", "cluster_mean__2__x",
                                        "cluster_mean__2__y"]
    for (g, c), rows in data.groupby(["g", "c"]):
        expected = rows["x"].mean() if rows["x"].notna().any() else np.nan
        assert predictors.loc[rows.index, "cluster_mean__2__x"].nunique(dropna=False) == 1
        assert predictors.loc[rows.index[0], "cluster_mean__2__x"] == pytest.approx(expected, nan_ok=True)
    one = _cluster_predictors(data, "g", [], ["x", "y"])
    pd.testing.assert_frame_equal(one, predictors.iloc[:, :2])


def test_the_other_grouping_columns_are_ids_and_change_the_draws_reproducibly(two_level):
    data = two_level.assign(c=np.tile(np.repeat([1, 2], 10), 30))
    switches = {**LEVELS, "exclude": ["g", "c"], "bootstrap": True, "cluster_predictors": True}
    completed, _ = impute_miceforest(data, "g", seed=4, threads=1, other_groups=[("c", "g")], **switches)
    assert completed["c"].equals(data["c"]) and not completed[["x", "size"]].isna().any().any()
    again, _ = impute_miceforest(data, "g", seed=4, threads=2, other_groups=[("c", "g")], **switches)
    pd.testing.assert_frame_equal(again, completed)
    without, _ = impute_miceforest(data, "g", seed=4, threads=1, **switches)
    assert not without["x"].equals(completed["x"])                      # the class means took part
    via_formula, _, _ = impute("miceforest", data, "y ~ x + (1 | g/c)", seed=4, **switches)
    pd.testing.assert_frame_equal(via_formula, completed)


def test_miceforest_is_loaded_without_matplotlib_which_stays_importable():
    """LightGBM imports matplotlib only to know whether it could plot; an impute job does not pay for that (~0.2 s),
    and matplotlib imports as ever afterwards."""
    code = ("import sys\nfrom mlmi.impute.miceforest import imputation_kernel\nimputation_kernel()\n"
            "print('lightgbm' in sys.modules, 'matplotlib' in sys.modules)\nimport matplotlib.figure\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False", "ok"]

