"""Amputation: MCAR (the vignette's add_NA), MAR and MNAR: rates, bias, dtypes, untouched input, errors."""
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from mlmi.data.ampute import ampute, ampute_from_config, ampute_mcar, missing_probabilities, solve_intercept

N = 100_000
PROB = {"minority": 0.05, "ses": 0.2, "size": 0.5}


@pytest.fixture(scope="module")
def complete():
    rng = np.random.default_rng(11)
    return pd.DataFrame({"schid": np.repeat(np.arange(1000), N // 1000),
                         "minority": rng.integers(0, 2, N), "ses": rng.normal(size=N),
                         "size": rng.integers(100, 2714, N), "mathach": rng.normal(12, 7, N)})


@pytest.fixture(scope="module")
def amputed(complete):
    return ampute_mcar(complete, PROB, np.random.default_rng(12))


@pytest.mark.parametrize("column, p", PROB.items())
def test_rates_within_binomial_tolerance(amputed, column, p):
    # The count of holes is Binomial(N, p): within 4 of its SDs.
    assert abs(amputed[column].isna().sum() - N * p) <= 4 * np.sqrt(N * p * (1 - p))


def test_observed_cells_keep_their_values(complete, amputed):
    for column in PROB:
        kept = amputed[column].notna()
        assert (amputed.loc[kept, column].to_numpy(dtype=float)
                == complete.loc[kept, column].to_numpy(dtype=float)).all()


def test_unlisted_columns_identical(complete, amputed):
    pd.testing.assert_frame_equal(amputed[["schid", "mathach"]], complete[["schid", "mathach"]])


def test_input_unchanged(complete):
    before = complete.copy()
    ampute_mcar(complete, PROB, np.random.default_rng(3))
    pd.testing.assert_frame_equal(complete, before)


def test_dtypes(amputed):
    assert str(amputed["minority"].dtype) == "Int64"     # 0/1 stays integer, not 0.0/1.0
    assert str(amputed["size"].dtype) == "Int64"
    assert amputed["ses"].dtype == np.float64
    assert amputed["schid"].dtype == np.int64
    assert set(amputed["minority"].dropna()) == {0, 1}


def test_no_holes_keeps_the_dtype(complete):
    out = ampute_mcar(complete, {"minority": 0.0}, np.random.default_rng(4))
    pd.testing.assert_frame_equal(out, complete)


def test_reproducible_and_order_matters(complete):
    first = ampute_mcar(complete, PROB, np.random.default_rng(5))
    pd.testing.assert_frame_equal(first, ampute_mcar(complete, PROB, np.random.default_rng(5)))
    reordered = dict(reversed(list(PROB.items())))
    assert not first.isna().equals(ampute_mcar(complete, reordered, np.random.default_rng(5)).isna())


@pytest.mark.parametrize("prob, column", [({"female": 0.1}, "female"),
                                          ({"ses": 1.0}, "ses"),
                                          ({"ses": -0.1}, "ses"),
                                          ({"minority": 0.1, "size": float("nan")}, "size"),
                                          ({"size": "0.1"}, "size")])
def test_bad_input_is_an_error(complete, prob, column):
    with pytest.raises(ValueError, match=column):
        ampute_mcar(complete, prob, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------
# ampute(): MCAR, MAR and MNAR
#
# Numbers from the model, for a standard normal z (all columns of `complete` are normal or
# close to it): with prob 0.2 and strength 2, alpha = -2.2285 and
#   P(missing | z in top quartile) = 0.5539, P(missing | z in bottom quartile) = 0.01171,
#   a ratio of 47.3, and the mean of z over the rows that keep the cell is -0.2617;
# with prob 0.2 and strength 1, alpha = -1.6497 and that mean is -0.1732 (by quadrature
# over the normal density). The tests check the realised frame against the probabilities
# of the realised rows (missing_probabilities), and those against these figures.

MAR_PREDICTORS = {column: ["mathach"] for column in PROB}


def kept_mean(y, p_missing):
    """Expected mean of y over the cells that stay observed, and its SD over the draws.

    Cell i stays with probability 1 - P_i independently, so the realised mean of the kept
    y is a ratio estimator; to first order its SD is sqrt(sum((y - m)^2 P (1 - P))) / sum(1 - P).
    """
    y, p_missing = np.asarray(y, dtype=float), np.asarray(p_missing, dtype=float)
    keep = 1 - p_missing
    mean = (keep * y).sum() / keep.sum()
    return mean, np.sqrt(((y - mean) ** 2 * p_missing * keep).sum()) / keep.sum()


def standardised(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std()


@pytest.fixture(scope="module")
def by_mechanism(complete):
    """mechanism -> (row probabilities, amputed frame), strength 1, PROB on all three columns."""
    out = {}
    for seed, mechanism in enumerate(["MAR", "MNAR"], start=20):
        predictors = MAR_PREDICTORS if mechanism == "MAR" else None
        probabilities = missing_probabilities(complete, mechanism=mechanism, prob=PROB, predictors=predictors)
        amputed = ampute(complete, mechanism=mechanism, prob=PROB, predictors=predictors,
                         rng=np.random.default_rng(seed))
        out[mechanism] = probabilities, amputed
    return out


@pytest.mark.parametrize("mechanism", ["MAR", "MNAR"])
@pytest.mark.parametrize("column, p", PROB.items())
def test_logistic_rates_within_binomial_tolerance(by_mechanism, mechanism, column, p):
    probabilities, amputed = by_mechanism[mechanism]
    # The expected rate is prob exactly (solved intercept) ...
    assert abs(probabilities[column].mean() - p) < 1e-10
    # ... and the count of holes is a sum of independent Bernoulli(P_i): within 4 of its
    # SDs, sqrt(sum P_i (1 - P_i)), which is below the binomial SD sqrt(N p (1 - p)).
    sd = np.sqrt((probabilities[column] * (1 - probabilities[column])).sum())
    assert sd <= np.sqrt(N * p * (1 - p))
    assert abs(amputed[column].isna().sum() - N * p) <= 4 * sd


@pytest.mark.parametrize("p", [1e-4, 0.01, 0.2, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("strength", [-3.0, 0.5, 2.0, 6.0])
def test_solved_intercept_gives_the_expected_rate(p, strength):
    # A skewed score, where the mean of expit is far from expit of the mean.
    z = standardised(np.random.default_rng(30).exponential(size=5000))
    alpha = solve_intercept(strength * z, p)
    assert abs(expit(alpha + strength * z).mean() - p) < 1e-10


def test_solved_intercept_limits():
    assert solve_intercept(np.array([0.3, -1.0]), 0.0) == -np.inf
    assert solve_intercept(np.zeros(10), 0.25) == pytest.approx(logit(0.25), abs=1e-12)


def test_mar_model_is_logistic_in_the_standardised_sum_of_standardised_predictors():
    rng = np.random.default_rng(31)
    data = pd.DataFrame({"x": rng.normal(size=2000), "a": rng.normal(5, 3, 2000),
                         "b": rng.integers(0, 2, 2000)})
    probabilities = missing_probabilities(data, mechanism="MAR", prob={"x": 0.3},
                                          predictors={"x": ["a", "b"]}, strength=1.5)
    z = standardised(standardised(data["a"]) + standardised(data["b"]))
    linear = logit(probabilities["x"].to_numpy())
    alpha = solve_intercept(1.5 * z, 0.3)
    np.testing.assert_allclose(linear, alpha + 1.5 * z, atol=1e-9)
    # MNAR: the column's own standardised value.
    own = missing_probabilities(data, mechanism="MNAR", prob={"x": 0.3}, strength=-0.7)
    np.testing.assert_allclose(logit(own["x"].to_numpy()),
                               solve_intercept(-0.7 * standardised(data["x"]), 0.3) - 0.7 * standardised(data["x"]),
                               atol=1e-9)


@pytest.fixture(scope="module")
def mar_strong(complete):
    """ses amputed at 0.2, MAR on mathach with strength 2."""
    settings = dict(mechanism="MAR", prob={"ses": 0.2}, predictors={"ses": ["mathach"]}, strength=2.0)
    return (missing_probabilities(complete, **settings)["ses"].to_numpy(),
            ampute(complete, **settings, rng=np.random.default_rng(32)))


def test_mar_high_predictor_values_lose_more_cells(complete, mar_strong):
    p_missing, amputed = mar_strong
    y = complete["mathach"]
    top, bottom = (y >= y.quantile(0.75)).to_numpy(), (y <= y.quantile(0.25)).to_numpy()
    missing = amputed["ses"].isna().to_numpy()
    for rows, expected in ((top, 0.5539), (bottom, 0.01171)):
        # The model's rate in the quartile matches the normal-theory figure (the sample is
        # normal, its alpha solved on the sample: within 3% relative) ...
        model_rate = p_missing[rows].mean()
        assert model_rate == pytest.approx(expected, rel=0.03)
        # ... and the realised rate is within 4 SDs of the model's.
        sd = np.sqrt((p_missing[rows] * (1 - p_missing[rows])).sum()) / rows.sum()
        assert abs(missing[rows].mean() - model_rate) <= 4 * sd
    # Model ratio 47.3; realised (bottom count ~290, relative SD ~6%) well above 30,
    # where MCAR gives 1.
    assert missing[top].mean() / missing[bottom].mean() > 30


def test_mar_complete_case_mean_of_the_predictor_is_biased_down(complete, mar_strong):
    p_missing, amputed = mar_strong
    y = complete["mathach"]
    expected, sd = kept_mean(y, p_missing)
    # Expected complete-case mean of mathach: -0.2617 of its SD below the full mean
    # (normal theory; the sample's own figure within 0.01 SD of it).
    assert (expected - y.mean()) / y.std(ddof=0) == pytest.approx(-0.2617, abs=0.01)
    realised = y[amputed["ses"].notna()].mean()
    assert abs(realised - expected) <= 4 * sd                    # sd ~ 0.01 points
    assert realised < y.mean() - 0.2 * y.std()                   # ~1.8 points down, ~180 SDs


@pytest.mark.parametrize("strength, shift", [(1.0, -0.1732), (-1.0, 0.1732)])
def test_mnar_observed_mean_is_biased(complete, strength, shift):
    x = complete["ses"]
    settings = dict(mechanism="MNAR", prob={"ses": 0.2}, strength=strength)
    p_missing = missing_probabilities(complete, **settings)["ses"].to_numpy()
    expected, sd = kept_mean(x, p_missing)
    # Positive strength: high values go missing, the observed mean falls by 0.173 SD
    # (normal theory; the sample within 0.01 SD); negative strength: it rises as much.
    assert (expected - x.mean()) / x.std(ddof=0) == pytest.approx(shift, abs=0.01)
    observed = ampute(complete, **settings, rng=np.random.default_rng(33))["ses"]
    assert abs(observed.mean() - expected) <= 4 * sd              # sd ~ 0.0015
    assert np.sign(observed.mean() - x.mean()) == np.sign(shift)
    assert abs(observed.mean() - x.mean()) > 0.15 * x.std()


def test_mcar_observed_mean_is_unbiased(complete):
    x = complete["ses"]
    observed = ampute(complete, mechanism="MCAR", prob={"ses": 0.2}, rng=np.random.default_rng(33))["ses"]
    # Under MCAR the observed cells are a simple random sample: their mean differs from
    # the full mean only by chance, SD = SD(x) sqrt(p / (N (1 - p))) ~ 0.0016; within 4.
    _, sd = kept_mean(x, np.full(N, 0.2))
    assert sd == pytest.approx(x.std(ddof=0) * np.sqrt(0.2 / (N * 0.8)), rel=1e-3)
    assert abs(observed.mean() - x.mean()) <= 4 * sd


def test_mcar_through_ampute_is_ampute_mcar(complete):
    pd.testing.assert_frame_equal(ampute(complete, mechanism="MCAR", prob=PROB, rng=np.random.default_rng(34)),
                                  ampute_mcar(complete, PROB, np.random.default_rng(34)))
    # strength does not enter MCAR, and empty predictors are accepted.
    pd.testing.assert_frame_equal(ampute(complete, mechanism="MCAR", prob=PROB, rng=np.random.default_rng(34),
                                         strength=3.0, predictors={}),
                                  ampute_mcar(complete, PROB, np.random.default_rng(34)))


@pytest.mark.parametrize("mechanism", ["MAR", "MNAR"])
def test_strength_zero_is_mcar(complete, mechanism):
    predictors = MAR_PREDICTORS if mechanism == "MAR" else None
    probabilities = missing_probabilities(complete, mechanism=mechanism, prob=PROB, predictors=predictors,
                                          strength=0.0)
    for column, p in PROB.items():
        assert (probabilities[column] == p).all()
    amputed = ampute(complete, mechanism=mechanism, prob=PROB, predictors=predictors, strength=0.0,
                     rng=np.random.default_rng(35))
    # Same probabilities and the same uniforms: the very holes of MCAR.
    pd.testing.assert_frame_equal(amputed, ampute_mcar(complete, PROB, np.random.default_rng(35)))
    if mechanism == "MAR":
        y = complete["mathach"]
        for rows in (y >= y.quantile(0.75), y <= y.quantile(0.25)):
            n, p = rows.sum(), PROB["ses"]
            assert abs(amputed.loc[rows, "ses"].isna().sum() - n * p) <= 4 * np.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("mechanism", ["MAR", "MNAR"])
def test_logistic_dtypes_values_and_input(complete, by_mechanism, mechanism):
    _, amputed = by_mechanism[mechanism]
    assert str(amputed["minority"].dtype) == "Int64"
    assert str(amputed["size"].dtype) == "Int64"
    assert amputed["ses"].dtype == np.float64
    assert set(amputed["minority"].dropna()) == {0, 1}
    pd.testing.assert_frame_equal(amputed[["schid", "mathach"]], complete[["schid", "mathach"]])
    for column in PROB:
        kept = amputed[column].notna()
        assert (amputed.loc[kept, column].to_numpy(dtype=float)
                == complete.loc[kept, column].to_numpy(dtype=float)).all()
    before = complete.copy()
    predictors = MAR_PREDICTORS if mechanism == "MAR" else None
    ampute(complete, mechanism=mechanism, prob=PROB, predictors=predictors, strength=2.0,
           rng=np.random.default_rng(36))
    pd.testing.assert_frame_equal(complete, before)


def test_logistic_reproducible_and_one_uniform_per_row_and_column(complete):
    settings = dict(mechanism="MNAR", prob=PROB, strength=1.0)
    rng = np.random.default_rng(37)
    first = ampute(complete, **settings, rng=rng)
    pd.testing.assert_frame_equal(first, ampute(complete, **settings, rng=np.random.default_rng(37)))
    reference = np.random.default_rng(37)
    for _ in PROB:
        reference.random(N)
    assert rng.random() == reference.random()       # the stream moved exactly as under MCAR
    reordered = dict(reversed(list(PROB.items())))
    assert not first.isna().equals(ampute(complete, **{**settings, "prob": reordered},
                                          rng=np.random.default_rng(37)).isna())


def test_zero_probability_under_mar_gives_no_holes(complete):
    out = ampute(complete, mechanism="MAR", prob={"minority": 0.0}, predictors={"minority": ["ses"]},
                 strength=5.0, rng=np.random.default_rng(38))
    pd.testing.assert_frame_equal(out, complete)


def test_from_config(complete):
    block = {"mechanism": "MCAR", "prob": {"ses": 0.2}, "predictors": {"ses": ["mathach"]}, "strength": 2.0}
    # A study grid varies the mechanism under one predictors block: MCAR leaves it aside.
    pd.testing.assert_frame_equal(ampute_from_config(complete, block, np.random.default_rng(39)),
                                  ampute_mcar(complete, {"ses": 0.2}, np.random.default_rng(39)))
    pd.testing.assert_frame_equal(
        ampute_from_config(complete, {**block, "mechanism": "MAR"}, np.random.default_rng(39)),
        ampute(complete, mechanism="MAR", prob={"ses": 0.2}, predictors={"ses": ["mathach"]}, strength=2.0,
               rng=np.random.default_rng(39)))
    # strength defaults to 1.
    pd.testing.assert_frame_equal(
        ampute_from_config(complete, {"mechanism": "MNAR", "prob": {"ses": 0.2}}, np.random.default_rng(39)),
        ampute(complete, mechanism="MNAR", prob={"ses": 0.2}, rng=np.random.default_rng(39)))
    with pytest.raises(ValueError, match="strenght"):
        ampute_from_config(complete, {**block, "strenght": 1.0}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mechanism"):
        ampute_from_config(complete, {"prob": {"ses": 0.2}}, np.random.default_rng(0))


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(40)
    return pd.DataFrame({"x": rng.normal(size=50), "y": rng.normal(size=50), "k": rng.integers(0, 3, 50),
                         "school": [f"s{i % 5}" for i in range(50)], "const": np.ones(50),
                         "holes": np.where(np.arange(50) % 7 == 0, np.nan, 1.0 * np.arange(50))})


@pytest.mark.parametrize("settings, message", [
    (dict(mechanism="mar", prob={"x": 0.1}), "unknown missingness mechanism 'mar'"),
    (dict(mechanism="MAR", prob={"x": 0.1}), "MAR needs predictors for column 'x'"),
    (dict(mechanism="MAR", prob={"x": 0.1, "k": 0.1}, predictors={"x": ["y"]}), "MAR needs predictors for column 'k'"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": []}), "MAR needs predictors for column 'x'"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": ["nope"]}), "predictor 'nope' of column 'x' is not in"),
    (dict(mechanism="MAR", prob={"x": 0.1, "y": 0.1}, predictors={"x": ["y"], "y": ["k"]}),
     "predictor 'y' of column 'x' is itself amputated"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": ["x"]}), "predictor 'x' of column 'x' is itself amputated"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": ["school"]}), "predictor 'school' of column 'x' is not numeric"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": ["holes"]}),
     "predictor 'holes' of column 'x' has missing values"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": ["const"]}), "predictor 'const' of column 'x' is constant"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": "y"}), "predictors of column 'x' must be a list"),
    (dict(mechanism="MAR", prob={"x": 0.1}, predictors={"x": ["y"], "k": ["y"]}), "column 'k', which is not amputated"),
    (dict(mechanism="MAR", prob={"x": 1.0}, predictors={"x": ["y"]}), "probability 1.0 for column 'x'"),
    (dict(mechanism="MNAR", prob={"x": -0.1}), "probability -0.1 for column 'x'"),
    (dict(mechanism="MNAR", prob={"x": 0.1, "nope": 0.1}), "column 'nope' to ampute is not in the data"),
    (dict(mechanism="MNAR", prob={"school": 0.1}), "column 'school' \\(MNAR uses its own values\\) is not numeric"),
    (dict(mechanism="MNAR", prob={"holes": 0.1}), "column 'holes' \\(MNAR uses its own values\\) has missing"),
    (dict(mechanism="MNAR", prob={"x": 0.1}, predictors={"x": ["y"]}), "not 'MNAR'"),
    (dict(mechanism="MCAR", prob={"x": 0.1}, predictors={"x": ["y"]}), "not 'MCAR'"),
    (dict(mechanism="MNAR", prob={"x": 0.1}, strength=float("nan")), "strength nan"),
    (dict(mechanism="MCAR", prob={"x": 0.1}, strength="1"), "strength '1'"),
])
def test_logistic_bad_input_is_an_error(small, settings, message):
    with pytest.raises(ValueError, match=message):
        ampute(small, **settings, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def schools():
    """Complete hsb-like data of 400 schools, school size constant within a school."""
    from mlmi.data.simulate import simulate_hsb

    return simulate_hsb({"n_schools": 400}, np.random.default_rng(3))[0]


@pytest.mark.parametrize("mechanism, extra", [("MCAR", {}), ("MAR", {"predictors": {"size": ["mathach"],
                                                                                    "ses": ["mathach"]}})])
def test_level2_columns_go_missing_in_whole_clusters(schools, mechanism, extra):
    config = {"mechanism": mechanism, "prob": {"ses": 0.2, "size": 0.3}, "level2": ["size"], **extra}
    amputed = ampute_from_config(schools, config, np.random.default_rng(4), group="schid")
    by_school = amputed.groupby("schid")["size"]
    assert (by_school.count().isin([0]) | by_school.count().eq(by_school.size())).all()   # all or none
    share = by_school.count().eq(0).mean()
    assert abs(share - 0.3) <= 4 * np.sqrt(0.3 * 0.7 / 400), share                    # of schools, not students
    assert amputed.groupby("schid")["ses"].count().lt(by_school.size()).mean() > 0.5    # ses: cell by cell
    assert amputed["size"].dtype == "Int64"


def test_level2_mar_uses_the_cluster_means_of_its_predictors(schools):
    config = {"mechanism": "MAR", "prob": {"size": 0.3}, "level2": ["size"], "predictors": {"size": ["mathach"]},
              "strength": 3.0}
    amputed = ampute_from_config(schools, config, np.random.default_rng(5), group="schid")
    school_mean = schools.groupby("schid")["mathach"].mean()
    lost = amputed.groupby("schid")["size"].count().eq(0)
    assert school_mean[lost].mean() > school_mean[~lost].mean() + 0.5 * school_mean.std()


def test_level2_amputation_leaves_cell_draws_as_they_were(schools):
    """Adding level-2 columns draws after the cell-level ones: the other columns' holes stay the same."""
    cells = ampute_from_config(schools, {"mechanism": "MCAR", "prob": {"ses": 0.2}}, np.random.default_rng(6))
    both = ampute_from_config(schools, {"mechanism": "MCAR", "prob": {"ses": 0.2, "size": 0.3}, "level2": ["size"]},
                              np.random.default_rng(6), group="schid")
    pd.testing.assert_series_equal(both["ses"], cells["ses"])


@pytest.mark.parametrize("config, group, problem", [
    ({"level2": ["size"]}, "schid", r"missingness.level2 lists \['size'\], which missingness.prob does not"),
    ({"level2": ["ses"]}, None, "missingness.level2 needs the grouping column"),
    ({"level2": ["ses"]}, "school", "grouping column 'school' of the clusters to ampute is not in the data"),
])
def test_level2_amputation_problems_are_named(schools, config, group, problem):
    with pytest.raises(ValueError, match=problem):
        ampute_from_config(schools, {"mechanism": "MCAR", "prob": {"ses": 0.2}, **config}, np.random.default_rng(1),
                           group=group)
