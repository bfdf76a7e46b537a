"""What the workflow runs, from the config alone: the single run or a study's scenarios, the names of a study's
runs, the seeds' keys, the external imputed files, and each run's config with its ``auto`` lists made explicit.

Every Snakemake process reads the workflow: the main one, and on a cluster each job again. This module is what
they all need, so it imports nothing beyond the standard library and reads no data until a rule asks for a
run's resolved config; the checks of what the user gave (``mlmi.run.inputs``, ``mlmi.run.study.plan_study``) run once,
in the main process (docs/architecture.md).
"""
import copy
import glob
import itertools
import json
import os
import re
import zlib

#: A scenario's name, which names a folder: letters, digits and ``_.-``, not dots alone ('.' and '..'
#: are the folder itself and its parent); also the segments of the workflow's ``{run}`` wildcard.
NAME = r"(?!\.+(?:/|$))[A-Za-z0-9_.-]+"
#: Config keys the workflow reads once for the whole study, so a scenario cannot vary them: the results folder,
#: the study itself, where the data come from, and what the rules write (their outputs cannot differ by run).
STUDY_WIDE = ("scenario", "study", "data.source", "data.na_values", "imputation.files", "pooling.mertools_legacy")


class InputError(ValueError):
    """A config, data file or imputed file mlmi cannot use; the message says why and what to do."""


def merge(base: dict, override: dict) -> dict:
    """``override`` merged recursively over a copy of ``base`` (as Snakemake merges configs)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else copy.deepcopy(value)
    return merged


def dotted(key: str, value) -> dict:
    """``{"a": {"b": value}}`` from ``"a.b"``."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def dotted_keys(override: dict, prefix: str = "") -> list[str]:
    """Every leaf key of a nested override, dotted: ``{"a": {"b": 1}}`` gives ``["a.b"]``."""
    keys = []
    for key, value in override.items():
        name = f"{prefix}{key}"
        keys += dotted_keys(value, f"{name}.") if isinstance(value, dict) and value else [name]
    return keys


def study_wide_key(override: dict) -> str | None:
    """The first key of a scenario's override that cannot vary per scenario (``STUDY_WIDE``), or None."""
    return next((key for key in dotted_keys(override)
                 if any(key == wide or key.startswith(f"{wide}.") for wide in STUDY_WIDE)), None)


def _label(key: str, value) -> str:
    """A path-safe ``name-value`` for one grid setting (the key's last part)."""
    return re.sub(r"[^A-Za-z0-9.]+", "", key.split(".")[-1]) + "-" + re.sub(r"[^A-Za-z0-9.]+", "", str(value))


def scenarios(study: dict) -> dict[str, dict]:
    """Scenario name -> override of the base config: named scenarios times the grid's combinations."""
    named = study.get("scenarios") or {"base": {}}
    grid = study.get("grid") or {}
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    expanded = {}
    for (name, override), combo in itertools.product(named.items(), combos):
        label = "_".join([*([name] if len(named) > 1 or not combo else []),
                          *(_label(key, value) for key, value in combo.items())])
        for key, value in combo.items():
            override = merge(override, dotted(key, value))
        if not re.fullmatch(NAME, label):
            raise ValueError(f"study: the scenario name {label!r} is not allowed; name it with letters, digits, "
                             "'_', '.' and '-', not dots alone (it names a folder)")
        if label in expanded:
            raise ValueError(f"study: two scenarios are both named {label!r}; give the named scenarios "
                             "or grid values names that differ")
        expanded[label] = override
    return expanded


def study_configs(config: dict) -> dict[str, dict]:
    """Scenario name -> its whole config: the base (without ``study``) with the scenario's override merged over
    it, ``auto`` lists as given; {} when the config has no ``study``. Refuses a study that cannot be planned: one
    of data it does not simulate, a scenario name that is not a folder name, a study-wide key varied."""
    if not config.get("study"):
        return {}
    base = {key: value for key, value in config.items() if key != "study"}
    if base["data"]["source"] != "simulate" or base["imputation"]["method"] == "external":
        raise InputError("study: a sensitivity study needs data.source: simulate (the truth must be known) and "
                         "an imputation.method that imputes here: miceforest or multilevel")
    try:
        overrides = scenarios(config["study"])
    except ValueError as error:
        raise InputError(str(error)) from None
    for name, override in overrides.items():
        key = study_wide_key(override)
        if key:
            raise InputError(f"study scenario {name}: {key} cannot vary per scenario (the workflow reads it once for "
                             "the whole study); set it in the base config, or run a second study")
    return {name: merge(base, override) for name, override in overrides.items()}


def run_parts(run: str) -> tuple[str, int] | None:
    """(scenario, replication) of a study run ``<study>/<scenario>/rep_<r>``, or None for a single run."""
    parts = run.split("/")
    return (parts[1], int(parts[2].removeprefix("rep_"))) if len(parts) == 3 else None


def scenario_key(name: str) -> int:
    """A stable number for a scenario name, so seeds do not depend on scenario order."""
    return zlib.crc32(name.encode())


def data_key(config: dict) -> int:
    """A stable number for what makes a scenario's data: its ``data`` and ``missingness`` settings.

    Simulation and amputation seeds derive from it (not from the scenario's name), so scenarios that
    differ only in how they impute, fit or pool see identical data sets in every replication: a paired
    comparison, whose differences carry no Monte Carlo noise from the data.
    """
    made_of = {key: config[key] for key in ("data", "missingness")}
    return zlib.crc32(json.dumps(made_of, sort_keys=True).encode())


def natural_key(path: str) -> list:
    """Sort key that puts imp2 before imp10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def imputation_files(spec: list[str]) -> list[str]:
    """The external imputed files: a list of paths, or one glob, in natural order."""
    if not spec:
        raise InputError("imputation.files: empty; list the imputed data sets, or give one glob such as 'imp/imp*.csv'")
    if len(spec) == 1 and glob.has_magic(spec[0]):
        files = sorted(glob.glob(spec[0]), key=natural_key)
        if not files:
            raise InputError(f"imputation.files: the glob {spec[0]!r} matches no file "
                             f"(relative to the working directory {os.getcwd()})")
        return files
    for path in spec:
        if not os.path.isfile(path):
            raise InputError(f"imputation.files: {path}: no such file")
    return list(spec)


def with_roles(config: dict) -> dict:
    """A copy of ``config`` whose imputation.exclude, .categorical and .level2 have ``auto`` made explicit
    (``mlmi.run.inputs.imputation_roles``: level 2 reads the user's data, or simulates a trial data set)."""
    from mlmi.run.inputs import imputation_roles  # pandas and the checks: only when a rule asks

    resolved = copy.deepcopy(config)
    resolved["imputation"].update(imputation_roles(config))
    return resolved


class Plan:
    """The runs of a config and their configs, each resolved once and kept.

    The rules' input and params functions ask for a run's config for every job (some 60,000 times in a
    10,000-job study): here that is a lookup. A run's ``auto`` lists are resolved the first time a rule asks
    (``with_roles``), so a job re-reading the workflow resolves at most its own run's. ``resolved`` takes
    configs resolved already (the main process's checked ones, ``mlmi.run.study.plan_study``), by scenario name.
    """

    def __init__(self, config: dict, resolved: dict[str, dict] | None = None):
        self.config = config
        self.scenarios = study_configs(config)
        self._resolved = dict(resolved or {})
        self._data_keys = {}

    def resolved(self, scenario: str | None = None) -> dict:
        """The config of a study scenario, or of the single run (None), its ``auto`` lists made explicit."""
        if scenario not in self._resolved:
            self._resolved[scenario] = with_roles(self.scenarios[scenario] if scenario else self.config)
        return self._resolved[scenario]

    def given(self, run: str) -> dict:
        """The config of ``run`` as given (``auto`` lists unresolved): the study scenario's of
        ``<study>/<scenario>/rep_<r>``, else the single run's."""
        parts = run_parts(run)
        return self.scenarios[parts[0]] if parts else self.config

    def run_config(self, run: str) -> dict:
        """The resolved config of ``run``: the study scenario's of ``<study>/<scenario>/rep_<r>``, else the
        single run's."""
        parts = run_parts(run)
        return self.resolved(parts[0] if parts else None)

    def data_key(self, scenario: str) -> int:
        """``data_key`` of a study scenario's config, computed once."""
        if scenario not in self._data_keys:
            self._data_keys[scenario] = data_key(self.scenarios[scenario])
        return self._data_keys[scenario]
