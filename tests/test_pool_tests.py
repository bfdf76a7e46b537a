"""D1, the pooled multi-parameter Wald test: a hand computation, R's own numbers, the limits, and the
hypotheses of ``pooling.tests`` (parity on real fits: tests/parity/test_d1_mitml_mice.py)."""
import logging
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlmi.fit.record import FitRecord
from mlmi.pool.hypotheses import TEST_COLUMNS, HypothesisError, d1, d1_df, d1_tests, hypothesis

# The fixture: p = 3 coefficients, up to m = 4 imputations, H0: beta2 = 0 and beta2 - 2 beta3 = 0.5 (k = 2).
Q = np.array([[1.0, 0.5, -0.2], [1.3, 0.2, -0.1], [0.8, 0.6, 0.1], [1.1, 0.4, -0.3]])
SCALE = [0.04, 0.05, 0.06, 0.045]
C = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, -2.0]])
RHS = np.array([0.0, 0.5])


def covariance(s: float) -> np.ndarray:
    return np.array([[s, 0.01, 0.0], [0.01, 0.03, 0.005], [0.0, 0.005, 0.02]])


U = np.array([covariance(s) for s in SCALE])

# mitml:::.D1 (mitml 0.4-4) on C q_l - c and C U_l C' of the fixture, printed with %.15g: statistic, df2, riv, p.
#   q <- rbind(c(1, .5, -.2), c(1.3, .2, -.1), c(.8, .6, .1), c(1.1, .4, -.3))
#   U <- function(l) { s <- c(.04, .05, .06, .045)[l]; matrix(c(s, .01, 0, .01, .03, .005, 0, .005, .02), 3) }
#   C <- rbind(c(0, 1, 0), c(0, 1, -2)); cc <- c(0, .5)
#   run <- function(m, dfcom) {
#     d <- mitml:::.D1(sapply(1:m, function(l) C %*% q[l, ] - cc),
#                      array(unlist(lapply(1:m, function(l) C %*% U(l) %*% t(C))), c(2, 2, m)), dfcom)
#     cat(sprintf("%.15g", c(d$F, d$v, d$r, pf(d$F, d$k, d$v, lower.tail = FALSE))), "\n") }
#   run(3, NULL); run(3, 20); run(4, NULL); run(4, 20)
MITML = {
    (3, None): (1.2967332123412, 7.69675331260141, 1.66183574879227, 0.327079983810691),
    (3, 20): (1.2967332123412, 4.0, 1.66183574879227, 0.368037764962869),
    (4, None): (1.2511013215859, 8.23009907026368, 1.46739130434783, 0.335416907134942),
    (4, 20): (1.2511013215859, 4.13712169350626, 1.46739130434783, 0.37589337350878),
}


def test_hand_computation_m3_k2():
    m, k = 3, 2
    # the constrained estimates and covariances, one imputation at a time
    Qc = [np.array([Q[l, 1] - 0.0, Q[l, 1] - 2 * Q[l, 2] - 0.5]) for l in range(m)]
    Wc = []
    for l in range(m):
        u = covariance(SCALE[l])
        var1 = u[1, 1]
        var2 = u[1, 1] + 4 * u[2, 2] - 4 * u[1, 2]
        cov12 = u[1, 1] - 2 * u[1, 2]
        Wc.append(np.array([[var1, cov12], [cov12, var2]]))
    qbar = sum(Qc) / m
    ubar = sum(Wc) / m
    b = sum(np.outer(x - qbar, x - qbar) for x in Qc) / (m - 1)
    determinant = ubar[0, 0] * ubar[1, 1] - ubar[0, 1] ** 2
    inverse = np.array([[ubar[1, 1], -ubar[0, 1]], [-ubar[1, 0], ubar[0, 0]]]) / determinant
    r1 = (1 + 1 / m) * np.trace(b @ inverse) / k
    statistic = qbar @ inverse @ qbar / (k * (1 + r1))
    t = k * (m - 1)                                         # = 4: Li et al.'s df for t <= 4
    v = t * (1 + 1 / k) * (1 + 1 / r1) ** 2 / 2

    result = d1(Q[:m], U[:m], C, RHS)
    assert result.riv == pytest.approx(r1, rel=1e-12)
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert (result.df1, result.df2) == (2, pytest.approx(v, rel=1e-12))
    assert result.p_value == pytest.approx(stats.f.sf(statistic, 2, v), rel=1e-12)
    np.testing.assert_allclose(result.qbar, qbar, rtol=1e-14)
    np.testing.assert_allclose(result.b, b, rtol=1e-12)


@pytest.mark.parametrize("m, dfcom", list(MITML))
def test_matches_mitml_internal_d1(m, dfcom):
    statistic, df2, riv, p = MITML[(m, dfcom)]
    result = d1(Q[:m], U[:m], C, RHS, dfcom=dfcom)
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert result.df2 == pytest.approx(df2, rel=1e-12)
    assert result.riv == pytest.approx(riv, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-10)


def test_li_df_for_t_above_4():
    # m = 4, k = 2: t = 6 > 4, v = 4 + (t - 4) (1 + (1 - 2/t) / r1)^2
    result = d1(Q, U, C, RHS)
    t, r1 = 6, result.riv
    assert result.df2 == pytest.approx(4 + (t - 4) * (1 + (1 - 2 / t) / r1) ** 2, rel=1e-12)


def test_no_between_variance_is_the_complete_data_wald_test():
    same = np.repeat(Q[:1], 4, axis=0)                     # B = 0: every imputation gives the same estimates
    wald = (C @ same[0] - RHS) @ np.linalg.solve(C @ U.mean(axis=0) @ C.T, C @ same[0] - RHS)
    with np.errstate(all="raise"):                          # no division by zero reaches the user
        large = d1(same, U, C, RHS)
    assert large.riv == 0
    assert large.statistic == pytest.approx(wald / 2, rel=1e-12)
    assert large.df2 == np.inf
    assert large.p_value == pytest.approx(stats.chi2.sf(wald, 2), rel=1e-12)
    small = d1(same, U, C, RHS, dfcom=50)                   # Reiter's df tend to vstar
    assert small.df2 == pytest.approx(51 / 53 * 50, rel=1e-12)
    assert small.p_value == pytest.approx(stats.f.sf(wald / 2, 2, 51 / 53 * 50), rel=1e-12)


def test_infinite_dfcom_is_the_large_sample_df():
    assert d1_df(2, 5, 0.3, np.inf) == d1_df(2, 5, 0.3, None)
    assert d1_df(2, 5, 0.3, 1e12) == pytest.approx(d1_df(2, 5, 0.3, None), rel=1e-6)


def test_identity_contrasts_test_every_coefficient():
    every = d1(Q, U)
    explicit = d1(Q, U, np.eye(3), np.zeros(3))
    assert every.statistic == explicit.statistic and every.df1 == 3


def test_warns_when_reiter_df_are_not_trustworthy(caplog):
    with caplog.at_level(logging.WARNING, logger="mlmi.pool.hypotheses"):
        d1(Q[:3], U[:3], C, RHS, dfcom=20)                  # k (m - 1) = 4
    assert "not trustworthy" in caplog.text


def test_refuses_one_imputation():
    with pytest.raises(ValueError, match="at least 2 imputations"):
        d1(Q[:1], U[:1], C, RHS)


TERMS = ["(Intercept)", "x1", "x10", "fb", "fc", "meanses", "ses"]
FACTORS = {"f": {"levels": ["a", "b", "c"], "reference": "a"}}


@pytest.mark.parametrize("text, row, constant", [
    ("ses - meanses = 0", {"ses": 1, "meanses": -1}, 0),
    ("2*x1 + x10*0.5 = 1", {"x1": 2, "x10": 0.5}, 1),
    ("-x1 = -2 + fb", {"x1": -1, "fb": -1}, -2),
    ("(Intercept) = 3", {"(Intercept)": 1}, 3),
    ("x1 - 1.5e-1 * fc", {"x1": 1, "fc": -0.15}, 0),       # no '=': the expression is zero, as mitml reads it
    ("`fb` - fc + x1 - x1 = 0.25", {"fb": 1, "fc": -1}, 0.25),
])
def test_constraints_are_parsed_into_c_and_c(text, row, constant):
    tested = hypothesis({"name": "t", "constraints": [text]}, TERMS)
    expected = np.array([[row.get(term, 0) for term in TERMS]], dtype=float)
    np.testing.assert_array_equal(tested.contrasts, expected)
    np.testing.assert_array_equal(tested.rhs, [constant])


def test_a_factor_stands_for_its_level_columns():
    tested = hypothesis({"name": "f", "terms": ["f", "x1"]}, TERMS, FACTORS)
    assert tested.text == "fb = 0, fc = 0, x1 = 0"
    assert [TERMS[j] for j in np.argmax(tested.contrasts, axis=1)] == ["fb", "fc", "x1"]


@pytest.mark.parametrize("test, message", [
    ({"terms": ["x2"]}, "'x2' is not a fixed-effect term"),
    ({"terms": ["f", "fb"]}, "'fb' is named twice"),
    ({"constraints": ["x2 = 0"]}, "names 'x2', not a fixed-effect term"),
    ({"constraints": ["sin(x1) = 0"]}, "names 'sin'"),
    ({"constraints": ["x1 = = 0"]}, "more than one '='"),
    ({"constraints": ["x1 * x10 = 0"]}, "not followed by a number"),
    ({"constraints": ["x1 +"]}, "ends with a sign"),
    ({"constraints": ["= 1"]}, "one side of '=' is empty"),
    ({"constraints": ["3 = 1"]}, "no term left"),
    ({"constraints": ["x1 = 0", "2*x1 = 1"]}, "not independent"),
])
def test_bad_hypotheses_are_one_line_naming_the_test(test, message):
    with pytest.raises(HypothesisError, match=message) as raised:
        hypothesis({"name": "mine", **test}, TERMS, FACTORS)
    assert str(raised.value).startswith("pooling.tests 'mine': ") and "\n" not in str(raised.value)


def fit_record(q, u, terms=("(Intercept)", "x1", "x2")):
    return FitRecord.from_fit({"fixed_effects": [{"term": t, "estimate": e} for t, e in zip(terms, q)],
                               "vcov": {"terms": list(terms), "matrix": np.asarray(u).tolist()}, "factors": {}})


def test_table_rows_and_empty_table_keep_one_shape():
    fits = [fit_record(Q[l], U[l]) for l in range(4)]
    empty = d1_tests(fits, [], dfcom=100)
    assert list(empty.columns) == TEST_COLUMNS and empty.empty
    table = d1_tests(fits, [{"name": "both", "terms": ["x1", "x2"]},
                            {"name": "gap", "constraints": ["x1 - 2*x2 = 0.5"]}], dfcom=100)
    assert list(table.columns) == TEST_COLUMNS
    assert list(table["test"]) == ["both", "gap"] and list(table["df"]) == [2, 1]
    assert list(table["hypothesis"]) == ["x1 = 0, x2 = 0", "x1 - 2*x2 = 0.5"]
    assert (table["method"] == "D1").all() and (table["m"] == 4).all() and (table["dfcom"] == 100).all()
    direct = d1(Q, U, np.array([[0, 1, -2.0]]), [0.5], dfcom=100)
    assert table.loc[1, "statistic"] == direct.statistic and table.loc[1, "df_residual"] == direct.df2
    round_trip = pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False)))
    assert list(round_trip.columns) == TEST_COLUMNS


def test_fits_with_different_terms_are_refused():
    fits = [fit_record(Q[0], U[0]), fit_record(Q[1], U[1], terms=("(Intercept)", "x1", "x3"))]
    with pytest.raises(ValueError, match="terms differ"):
        d1_tests(fits, [{"name": "t", "terms": ["x1"]}], dfcom=None)


def test_the_workflow_stops_on_a_bad_test_before_any_job(tmp_path):
    """A dry run is enough: the start-up check runs when the Snakefile is read, before any job is planned."""
    from test_workflow import TINY, snakemake_command

    config = {**TINY, "pooling": {"tests": [{"name": "gap", "constraints": ["ses - SES = 0"]}]}}
    done = subprocess.run(snakemake_command(tmp_path, config, 1, ["-n"]), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if line.startswith("mlmi:")]
    assert said == ["mlmi: pooling.tests 'gap': constraint 'ses - SES = 0' names 'SES', not a fixed-effect term of "
                    "model.formula (terms: (Intercept), minority, female, ses, meanses); name terms as lme4 names them"]
    assert not (tmp_path / "results").exists()
