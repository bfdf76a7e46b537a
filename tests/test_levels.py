"""Level detection, filling level-2 columns per cluster, and passive cluster means, checked by hand."""
import numpy as np
import pandas as pd

from mlmi.data.levels import cluster_means, fill_within_clusters, level2_columns


def frame():
    return pd.DataFrame({
        "g": [1, 1, 1, 2, 2, 3, 3],
        "size": [100.0, np.nan, 100.0, 250.0, 250.0, np.nan, np.nan],
        "x": [0.5, 1.5, np.nan, 2.0, 4.0, 1.0, 3.0],
        "one_per_cluster": [1.0, np.nan, np.nan, 2.0, np.nan, 3.0, np.nan],
        "mx": [0.0] * 7,
    })


def test_level2_columns_are_constant_within_clusters_in_their_observed_values():
    assert level2_columns(frame(), "g", ["size", "x"]) == ["size"]
    # never seen twice in a cluster: not distinguishable from level 1, so not level 2
    assert "one_per_cluster" not in level2_columns(frame(), "g")


def test_fill_within_clusters_takes_the_clusters_own_value_and_leaves_unknown_clusters_missing():
    filled = fill_within_clusters(frame(), "g", ["size"])
    assert filled["size"].tolist()[:5] == [100.0, 100.0, 100.0, 250.0, 250.0]
    assert filled["size"].iloc[5:].isna().all()
    assert frame()["size"].isna().sum() == 3  # the input is not modified


def test_cluster_means_are_recomputed_from_the_level1_column():
    data = frame().assign(x=[0.5, 1.5, 1.0, 2.0, 4.0, 1.0, 3.0])
    means = cluster_means(data, "g", {"mx": "x"})["mx"].tolist()
    assert means == [1.0, 1.0, 1.0, 3.0, 3.0, 2.0, 2.0]
