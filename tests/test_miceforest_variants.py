"""benchmarks/miceforest_variants.py's paired differences (the numbers of docs/imputation-speed.md), by hand."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from miceforest_variants import paired_differences  # noqa: E402

TRUTH = {"fixed_effects": {"ses": 2.0}, "random_effects": {"group": "g", "sd": {"ses": 0.5}, "cor": {}}, "sigma": 6.0}


def rows(scenario, ses, low, high, sd):
    """Three replications' pooled ses (with intervals) and ses SD, plus a listwise row that must be ignored."""
    fixed = pd.DataFrame({"scenario": scenario, "replication": [1, 2, 3], "method": "pooled", "term": "ses",
                          "estimate": ses, "conf_low": low, "conf_high": high})
    sds = pd.DataFrame({"scenario": scenario, "replication": [1, 2, 3], "method": "pooled", "term": "sd__ses",
                        "estimate": sd, "conf_low": np.nan, "conf_high": np.nan})
    listwise = fixed.assign(method="listwise", estimate=99.0)
    return pd.concat([fixed, sds, listwise])


def test_paired_differences_by_hand():
    estimates = pd.concat([rows("a", [2.2, 2.0, 1.8], [1.9, 1.5, 1.0], [2.5, 2.5, 1.9], [0.6, 0.5, 0.7]),
                           rows("b", [2.0, 2.1, 1.5], [1.7, 1.6, 1.0], [2.3, 2.6, 2.1], [0.5, 0.5, 0.5])])
    got = paired_differences(estimates, TRUTH, "a").set_index("term")
    ses = got.loc["ses"]
    differences = np.array([-0.2, 0.1, -0.3]) / 2.0          # b - a, in units of the truth
    assert ses["n_reps"] == 3 and ses["scenario"] == "b" and ses["reference"] == "a"
    assert ses["rel_bias_difference"] == pytest.approx(differences.mean())
    assert ses["rel_bias_difference_mcse"] == pytest.approx(differences.std(ddof=1) / np.sqrt(3))
    covered = np.array([1, 1, 1]) - np.array([1, 1, 0])        # a misses 2.0 in replication 3, b covers it
    assert ses["coverage_difference"] == pytest.approx(covered.mean())
    assert ses["coverage_difference_mcse"] == pytest.approx(covered.std(ddof=1) / np.sqrt(3))
    assert ses["discordant"] == 1
    sd = got.loc["sd__ses"]
    assert sd["rel_bias_difference"] == pytest.approx(np.mean([-0.1, 0.0, -0.2]) / 0.5)
    assert np.isnan(sd["coverage_difference"]) and np.isnan(sd["discordant"])
