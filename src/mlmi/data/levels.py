"""Which columns live at which level of a two-level data set, and cluster means kept as such.

A level-2 (cluster-level) column, such as a school's ``size``, is constant within each
cluster; an imputation must fill it once per cluster, never per row. A cluster-mean column,
such as ``meanses`` of ``ses``, is a function of a level-1 column and is recomputed from it
(passive imputation), never imputed on its own (design §9).
"""
import pandas as pd


def level2_columns(data: pd.DataFrame, group: str, columns=None) -> list[str]:
    """The columns (of ``columns``, default all but ``group``) constant within every cluster in their
    observed values, and observed somewhere: cluster-level variables.

    A column observed in no cluster more than once cannot be told apart from a level-1 one by its
    values alone; it counts as level 2 only when some cluster has two or more observed values.
    """
    candidates = [c for c in (data.columns if columns is None else columns) if c != group]
    found = []
    for column in candidates:
        observed = data[[group, column]].dropna()
        if observed.empty:
            continue
        counts = observed.groupby(group)[column].agg(["nunique", "size"])
        if (counts["nunique"] <= 1).all() and (counts["size"] >= 2).any():
            found.append(column)
    return found


def fill_within_clusters(data: pd.DataFrame, group: str, columns) -> pd.DataFrame:
    """A copy of ``data`` whose missing cells of each level-2 column take their cluster's observed value,
    where the cluster has one (cells of clusters with none stay missing)."""
    result = data.copy()
    for column in columns:
        known = data[[group, column]].dropna().drop_duplicates(group).set_index(group)[column]
        result[column] = result[column].fillna(data[group].map(known))
    return result


def cluster_means(data: pd.DataFrame, group: str, means: dict[str, str]) -> pd.DataFrame:
    """A copy of ``data`` with each column of ``means`` (mean column -> level-1 column) recomputed as
    the cluster mean of its level-1 column over the rows of the cluster."""
    result = data.copy()
    for mean_column, column in means.items():
        result[mean_column] = data.groupby(group)[column].transform("mean").astype(data[mean_column].dtype)
    return result
