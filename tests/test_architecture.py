"""The house rules of docs/architecture.md that the code itself can check.

- Only the fit package, the stages (``mlmi.run.stages``: the fit stage, and the pool stage handing D3 the fit's
  likelihood) and the multilevel sampler (which fits the substantive model: that is what makes it compatible)
  import the fit engine (``mlmi.fit.lmer``, ``glmm``, ``deviance``, ``deviance_factors``); every other stage
  speaks the fit's vocabulary only (``mlmi.fit.record``, ``formula``, ``families``, ``lmer_checks``).
- Pooling is pure: importing every ``mlmi.pool`` module pulls in neither the engine, statsmodels nor matplotlib.
- Every pooled table of the results contract (``mlmi.run.layout``) is made by a function of ``mlmi.pool`` from
  inputs the pool stage has (``mlmi.run.stages.Pooling``), so that adding one is its entry and its function.
"""
import ast
import dataclasses
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from mlmi.run.layout import LEGACY_TABLES, POOLED_TABLES
from mlmi.run.stages import Pooling

SRC = Path(__file__).parents[1] / "src"
ENGINE = {"mlmi.fit.lmer", "mlmi.fit.glmm", "mlmi.fit.deviance", "mlmi.fit.deviance_factors"}
MAY_FIT = {"mlmi.run.stages", "mlmi.impute.multilevel"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function (``from mlmi.fit import deviance`` is
    ``mlmi.fit.deviance``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_fit_the_stages_and_the_sampler_import_the_fit_engine():
    modules = {module_name(path): path for path in SRC.glob("mlmi/**/*.py")}
    assert "mlmi.pool.compare" in modules and "mlmi.fit.lmer" in modules      # the scan sees the package
    offenders = {name: sorted(imported(path) & ENGINE) for name, path in modules.items()
                 if not name.startswith("mlmi.fit") and name not in MAY_FIT and imported(path) & ENGINE}
    assert offenders == {}


def test_importing_every_pool_module_pulls_in_neither_the_fit_engine_nor_statsmodels_nor_matplotlib():
    pool = sorted(module_name(path) for path in SRC.glob("mlmi/pool/*.py"))
    code = (f"import sys\nfor name in {pool!r}: __import__(name)\n"
            f"print(' '.join(name for name in {sorted(ENGINE | {'statsmodels', 'matplotlib'})!r} "
            "if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("key, table", [*POOLED_TABLES.items(), *LEGACY_TABLES.items()])
def test_every_pooled_table_is_made_by_a_pool_function_from_the_pool_stages_inputs(key, table):
    module, _, name = table.make.partition(":")
    assert module.startswith("mlmi.pool.")
    parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    fields = {field.name for field in dataclasses.fields(Pooling)}
    assert set(table.takes) <= fields and set(table.takes) <= set(parameters)
    required = {p.name for p in parameters.values() if p.default is inspect.Parameter.empty}
    assert required <= set(table.takes)


def test_table_stems_are_distinct():
    stems = [table.stem for table in [*POOLED_TABLES.values(), *LEGACY_TABLES.values()]]
    assert len(stems) == len(set(stems))
