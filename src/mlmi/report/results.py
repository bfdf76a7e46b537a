"""One run's results read back, for the report, the console (``mlmi summary``) and a study's replications:
``RunResults``, which finds the files by the names of the results contract (``mlmi.run.layout``).
"""
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlmi.fit.record import FitRecord
from mlmi.pool.failed_fits import left_out_warnings
from mlmi.pool.rubin import negligible_between
from mlmi.run.io import read_json
from mlmi.run.layout import CHECKS, POOLED_TABLES, pooled_tables


class ResultsError(ValueError):
    """A folder that is not an mlmi results folder, or one the workflow has not finished."""


def is_true(value) -> bool:
    """A flag read back from CSV (bool, numpy bool or the text "True"); missing counts as false."""
    return str(value).strip().lower() in ("true", "1")


def fit_warnings(model_info: pd.DataFrame, fixed: pd.DataFrame) -> list[str]:
    """Fits that did not converge, are singular or warned, then terms whose imputations barely differ. A fit's
    own warnings say it in lme4's words (its record's, which name no convergence and a singular fit); the flags
    speak only for a row without them."""
    found = []
    for row in model_info.itertuples(index=False):
        if not pd.isna(row.warnings) and str(row.warnings).strip():
            problems = [str(row.warnings)]
        else:
            problems = ["did not converge"] if not is_true(row.converged) else []
            if is_true(row.singular):
                problems.append("singular fit (a variance at zero or a correlation at ±1)")
        if problems:
            found.append(f"fit {row.imputation}: " + "; ".join(problems))
    return found + negligible_between(fixed)


def recorded_warnings(checks: dict | None, models: pd.DataFrame | None, labelled: bool = True) -> list[str]:
    """The warnings of the start-up check (``checks.json``) and of the imputation models (``models.csv``);
    ``labelled`` names the record each comes from (``start-up check: ...``), as the report lists them."""
    recorded = [("start-up check", text) for text in (checks or {}).get("warnings", [])]
    recorded += [("imputation_models", text) for text in ([] if models is None else models["warning"]) if text]
    return [f"{label}: {text}" if labelled else text for label, text in recorded]


@dataclass
class RunResults:
    """One run's results folder, read on demand: pooled tables by key, fit records by label, the imputation
    models and the start-up check. Only files of the results contract are read, each when first asked for."""

    folder: Path
    _tables: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, run_dir, required=("fixed_effects",)) -> "RunResults":
        """The results in ``run_dir``, or a ResultsError naming the first of the ``required`` tables missing."""
        folder = Path(run_dir)
        if not folder.is_dir():
            raise ResultsError(f"{folder} is not a folder; give a results folder such as results/hsb")
        paths = pooled_tables(folder)
        absent = [f"pooled/{POOLED_TABLES[key].stem}.csv" for key in required if not Path(paths[key]).is_file()]
        if absent:
            raise ResultsError(f"{folder} is not an mlmi results folder: {absent[0]} is missing "
                               "(run the workflow first, or give results/<scenario>)")
        return cls(folder)

    def table(self, key: str) -> pd.DataFrame:
        """A pooled table by its key (``POOLED_TABLES``, ``LEGACY_TABLES``); model_info's imputation as text."""
        if key not in self._tables:
            path = pooled_tables(self.folder, mertools_legacy=True)[key]
            self._tables[key] = pd.read_csv(path, dtype={"imputation": str} if key == "model_info" else None)
        return self._tables[key]

    def has_table(self, key: str) -> bool:
        """Whether the run wrote the table (merTools' legacy one only when asked for)."""
        return Path(pooled_tables(self.folder, mertools_legacy=True)[key]).is_file()

    def fit(self, label: str) -> FitRecord:
        """A fit record by label: ``imp_<k>``, ``listwise`` or ``complete``; a ResultsError when absent, a
        ``RecordVersionError`` when another mlmi wrote it."""
        path = self.folder / "fits" / f"{label}.json"
        if not path.is_file():
            raise ResultsError(f"{self.folder} is not an mlmi results folder: fits/{label}.json is missing "
                               "(run the workflow first, or give results/<scenario>)")
        return FitRecord.from_json(path)

    def imputation_models(self) -> pd.DataFrame | None:
        """``imputations/models.csv`` (an empty warning stays ''), or None when the imputations came from elsewhere."""
        path = self.folder / "imputations" / "models.csv"
        return pd.read_csv(path, keep_default_na=False) if path.is_file() else None

    def checks(self) -> dict:
        """The start-up check's record, or no warnings when it made none (simulated data)."""
        path = self.folder / CHECKS
        return read_json(path) if path.is_file() else {"warnings": []}

    def recorded_warnings(self, labelled: bool = True) -> list[str]:
        """The warnings the start-up check and the imputation models recorded (``recorded_warnings``)."""
        return recorded_warnings(self.checks(), self.imputation_models(), labelled)

    def result_warnings(self) -> list[str]:
        """Imputations left out of the pool, then the fits' and the pooling's warnings (``fit_warnings``)."""
        model_info = self.table("model_info")
        return left_out_warnings(model_info) + fit_warnings(model_info, self.table("fixed_effects"))
