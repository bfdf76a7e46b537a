"""merTools-style summaries against hand computations, with merTools' ranef defect fixed."""
import numpy as np
import pytest

from mlmi.fit.record import FitRecord
from mlmi.pool.summarize import model_info, pool_ranef, random_effect_stats, varcorr


def record(sd0, sd1, cor, sigma, modes, cond_var, converged=True, levels=(1, 2)):
    return FitRecord.from_fit({
        "random_effects": {"group": "g", "terms": ["(Intercept)", "x"], "sd": {"(Intercept)": sd0, "x": sd1},
                           "cor": {"(Intercept).x": cor},
                           "cov": [[sd0**2, cor * sd0 * sd1], [cor * sd0 * sd1, sd1**2]]},
        "sigma": sigma,
        "ranef": {"group": "g", "levels": list(levels), "terms": ["(Intercept)", "x"], "modes": modes,
                  "cond_var": [np.diag(v).tolist() for v in cond_var]},
        "n_obs": 50, "n_levels": 1, "n_groups": {"g": 2}, "aic": 10.0, "bic": 11.0, "loglik": -4.0,
        "reml_criterion": 8.0, "convergence": {"converged": converged, "singular": False, "warnings": ["w"]},
    })


FITS = [record(1.0, 0.5, -0.2, 3.0, [[0.1, 0.2], [-0.1, 0.0]], [[0.04, 0.01], [0.09, 0.01]]),
        record(2.0, 0.7, -0.4, 5.0, [[0.3, 0.0], [0.1, 0.4]], [[0.06, 0.03], [0.11, 0.01]], converged=False)]


def test_random_effect_stats_mean_and_between_sd():
    table = random_effect_stats(FITS).set_index("term")
    assert list(table.index) == ["sd__(Intercept)", "sd__x", "cor__(Intercept).x", "sd__Observation"]
    assert table.loc["sd__(Intercept)", "estimate"] == pytest.approx(1.5)
    assert table.loc["sd__(Intercept)", "between_sd"] == pytest.approx(np.sqrt(0.5))   # sd(c(1, 2)) in R
    assert table.loc["cor__(Intercept).x", "estimate"] == pytest.approx(-0.3)
    assert table.loc["sd__Observation", "group"] == "Residual"
    assert table.loc["sd__Observation", "between_sd"] == pytest.approx(np.sqrt(2))


def test_varcorr_rows_like_lme4():
    table = varcorr(FITS)
    assert table[["grp", "var1"]].fillna("NA").values.tolist() == [
        ["g", "(Intercept)"], ["g", "x"], ["g", "(Intercept)"], ["Residual", "NA"]]
    np.testing.assert_allclose(table["sdcor"], [1.5, 0.6, -0.3, 4.0])
    np.testing.assert_allclose(table["vcov"], [2.25, 0.36, -0.3 * 1.5 * 0.6, 16.0])


def test_ranef_mean_over_all_fits_with_rubin_se():
    table = pool_ranef(FITS)
    assert table[["level", "term"]].values.tolist() == [[1, "(Intercept)"], [1, "x"], [2, "(Intercept)"], [2, "x"]]
    np.testing.assert_allclose(table["estimate"], [0.2, 0.1, 0.0, 0.2])   # not merTools' first fit / m
    # level 1, intercept: ubar = 0.05, b = ((0.1-0.2)^2 + (0.3-0.2)^2) / 1 = 0.02, t = 0.05 + 1.5 * 0.02
    assert table["std_error"].iloc[0] == pytest.approx(np.sqrt(0.08))
    # level 2, x: ubar = 0.01, b = (0.2^2 + 0.2^2) = 0.08, t = 0.01 + 0.12
    assert table["std_error"].iloc[3] == pytest.approx(np.sqrt(0.13))


def test_ranef_refuses_different_levels():
    other = record(1, 1, 0, 1, [[0, 0], [0, 0]], [[1, 1], [1, 1]], levels=(1, 3))
    with pytest.raises(ValueError, match="different levels"):
        pool_ranef([FITS[0], other])


def test_model_info_one_row_per_fit():
    table = model_info({"1": FITS[0], "2": FITS[1], "listwise": FITS[0]})
    assert list(table["imputation"]) == ["1", "2", "listwise"]
    assert list(table["converged"]) == [True, False, True]
    assert table["n_groups"].tolist() == [2, 2, 2] and table["warnings"].tolist() == ["w"] * 3
