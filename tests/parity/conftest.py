"""Shared by the parity tests: a table of the worst differences from R, printed at the end of the run."""
import pytest

WORST = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def worst_differences(request) -> dict:
    """``(case, quantity) -> [worst absolute, worst relative, tolerance]``, filled by the tests."""
    return request.config.stash.setdefault(WORST, {})


def pytest_terminal_summary(terminalreporter, config):
    """Print every quantity's worst difference from lme4 / mice, so the margins are on record."""
    table = config.stash.get(WORST, {})
    if not table:
        return
    terminalreporter.section("parity with lme4 and mice: worst differences")
    terminalreporter.write_line(f"{'case':<38} {'quantity':<16} {'worst abs':>10} {'worst rel':>10}  tolerance")
    for (case, quantity), (absolute, relative, tolerance) in table.items():
        terminalreporter.write_line(f"{case:<38} {quantity:<16} {absolute:>10.2e} {relative:>10.2e}  {tolerance}")
