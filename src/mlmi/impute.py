"""One imputed data set with miceforest, reproducible whatever the number of threads.

Like Amelia's ``idvars``, ``exclude`` columns are carried through but neither imputed nor
used as predictors; like its ``noms``, ``categorical`` columns are imputed as categories.
Columns of text (``"girl"``/``"boy"``) are categories whatever the lists say: an imputed
category is always one of the levels observed in its column.
"""
import pandas as pd
from miceforest import ImputationKernel

CHAIN_COLUMNS = ["iteration", "variable", "mean", "sd"]


def deterministic_lightgbm(threads: int) -> dict:
    """LightGBM settings that make a tree independent of the number of threads."""
    return {"num_threads": threads, "deterministic": True, "force_row_wise": True}


def impute_once(data: pd.DataFrame, *, seed: int, iterations: int, exclude=(), categorical=(),
                threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return a completed copy of ``data`` (same rows, order, columns and dtypes) and its chains.

    The chains table has one row per iteration (0 = miceforest's random initialisation) and
    imputed variable: the mean and SD of the imputed cells, the usual convergence check.
    A text category enters it by its level numbers (0 = first level in sorted order), so
    for two levels the mean is the share of the second.

    Parameters
    ----------
    data : DataFrame
        The incomplete data; never modified.
    seed : int
        This imputation's own seed (see ``mlmi.seeds.int_seed_for``).
    iterations : int
        MICE iterations of miceforest.
    exclude, categorical : sequence of str
        Columns kept out of the imputation model; columns imputed as categories.
    threads : int
        LightGBM threads; results do not depend on it.
    """
    _check_columns(data, "imputation.exclude", exclude)
    _check_columns(data, "imputation.categorical", categorical)
    work = data.drop(columns=list(exclude))
    work = work.astype({c: "category" if c in categorical or is_text(work[c]) else float for c in work.columns})
    if not work.isna().any().any():
        return data.copy(), pd.DataFrame(columns=CHAIN_COLUMNS)
    kernel = ImputationKernel(work, num_datasets=1, random_state=seed, save_all_iterations_data=True)
    kernel.mice(iterations, **deterministic_lightgbm(threads))
    return _restore(data, kernel.complete_data(dataset=0)), _chains(kernel, work, iterations)


def _chains(kernel: ImputationKernel, work: pd.DataFrame, iterations: int) -> pd.DataFrame:
    """Mean and SD of each variable's imputed cells at every iteration."""
    holes = work.isna()
    rows = []
    for iteration in range(iterations + 1):
        completed = kernel.complete_data(dataset=0, iteration=iteration)
        for variable in holes.columns[holes.any()]:
            values = _as_numbers(completed.loc[holes[variable], variable])
            rows.append((iteration, variable, values.mean(), values.std()))
    return pd.DataFrame(rows, columns=CHAIN_COLUMNS)


def _check_columns(data: pd.DataFrame, key: str, columns) -> None:
    """Fail with the config key's name when it lists a column the data lacks."""
    absent = [c for c in columns if c not in data.columns]
    if absent:
        raise ValueError(f"{key} lists columns {absent} that the data does not have (columns: {list(data.columns)})")


def is_text(column: pd.Series) -> bool:
    """Whether a column holds text or true/false values (categories by nature), not numbers."""
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _as_numbers(values: pd.Series) -> pd.Series:
    """Imputed values as floats: numbers as they are, text categories by their level numbers."""
    if isinstance(values.dtype, pd.CategoricalDtype) and not pd.api.types.is_numeric_dtype(values.cat.categories):
        return values.cat.codes.astype(float)
    return values.astype(float)


def _restore(original: pd.DataFrame, completed: pd.DataFrame) -> pd.DataFrame:
    """Put imputed columns back with the original dtypes (integers must come back whole, text as text)."""
    result = original.copy()
    for column in completed.columns:
        values = completed[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(values.cat.categories.dtype)
        result[column] = values.to_numpy()
    return result.astype(original.dtypes.to_dict())
