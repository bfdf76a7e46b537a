"""The lock file, pyproject.toml's pins and envs/*.yaml agree (issue 8: archival reproduction)."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def pins(lines) -> dict[str, str]:
    """name -> version of every ``name==version`` requirement (names normalised as PyPI does)."""
    found = {}
    for line in lines:
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


LOCK = pins((REPO / "requirements.lock").read_text().splitlines())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("requirement", PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["test"])
def test_every_pyproject_pin_is_the_locked_version(requirement):
    ((name, version),) = pins([requirement]).items()
    assert LOCK[name] == version, f"{name}: pyproject {version}, lock {LOCK.get(name)}"


@pytest.mark.parametrize("requirement", PYPROJECT["optional-dependencies"]["cluster"])
def test_cluster_extra_installs_over_the_lock_unchanged(requirement):
    """The lock is the test install; the cluster extra stays out of it (README "On a cluster"), pins exactly,
    and everything it requires is satisfied by the locked versions, so installing it changes none of them."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    ((name, pinned),) = pins([requirement]).items()
    assert name not in LOCK, f"{name} is in requirements.lock, which holds the test install only"
    try:
        installed, needs = version(name), requires(name) or []
    except PackageNotFoundError:
        pytest.skip(f"{name} is not installed: pip install -e '.[cluster]' to check what it requires")
    assert installed == pinned, f"{name}: pyproject {pinned}, installed {installed}"
    available = LOCK | pins(PYPROJECT["optional-dependencies"]["cluster"])
    for need in map(Requirement, needs):
        key = re.sub(r"[-_.]+", "-", need.name).lower()
        locked = available.get(key)
        assert locked and need.specifier.contains(locked), f"{name} needs {need}, lock has {locked}"


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda path: path.name)
def test_conda_envs_pin_the_locked_versions(env):
    pip_section = next(item["pip"] for item in yaml.safe_load(env.read_text())["dependencies"] if isinstance(item, dict))
    env_pins = pins(pip_section)
    assert env_pins, f"{env.name} pins nothing"
    for name, version in env_pins.items():
        assert LOCK[name] == version, f"{env.name}: {name} {version}, lock {LOCK.get(name)}"
