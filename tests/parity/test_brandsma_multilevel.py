"""mlmi's multilevel imputation against R's jomo.lmer on real data (issue 13): mice::brandsma.

What it checks
--------------
``tests/data/brandsma.csv`` is R's ``mice::brandsma`` (3902 pupils with the outcome observed, 211
schools; iqv 16 and ses 121 missing), ``tests/data/brandsma_iqv_mar.csv`` the same with iqv also
missing at random on the outcome (30%), and ``tests/data/brandsma_jomo.json`` the frozen result of
``jomo::jomo.lmer`` on each (m = 20, nburn = 2000, nbetween = 250), fitted with lme4 and pooled
with ``mice::pool``; ``tests/data/brandsma_jomo.R`` made them and says how to remake them. The
analysis model ``lpo ~ iqv + ses + (1 + iqv | sch)`` has a random slope on an incomplete
covariate, the case only a substantive-model-compatible imputation gets right (design §9). The
real holes are too few to tell methods apart (listwise deletion passes); the MAR case tells.

For each case the test runs the whole workflow with ``imputation.method: multilevel`` and requires

- every pooled fixed effect within one of jomo's pooled standard errors of jomo's pooled
  estimate (issue 13's acceptance); jomo's SE, frozen, is the yardstick, so a wider SE of
  mlmi's own cannot buy a pass;
- the mean SD of the iqv slope, the intercept SD and the residual SD within ``SD_TOLERANCE``
  (10%, relative) of jomo's;
- proper imputation: iqv and ses vary between imputations (riv > 0 for both), and mlmi's pooled SEs
  within ``SE_TOLERANCE`` (relative) of jomo's.

The acceptance is not vacuous: jomo's own numbers pass it and, moved by a little more than it
allows, fail it (``test_acceptance_can_fail``); on the MAR case the frozen numbers of listwise
deletion and of mice's 2l.pan (a random-intercept model of iqv on lpo, not compatible with iqv's
random slope in the analysis model) fail it (``test_acceptance_tells_methods_apart_...``). So does
mlmi's single-level miceforest (tried once by hand with this test and ``method: miceforest``): it
passes on the real holes and fails on the MAR case, with the iqv slope's SD 25% below jomo's.

Runtime is set by ``M`` and ``BURN_IN`` (per case, m chains of BURN_IN iterations each); jomo's
chains on these data are stationary within 500 iterations from its default start.

How to run
----------
::

    python -m pytest tests/parity/test_brandsma_multilevel.py

Only Python is needed (the R side is frozen); remaking the reference needs R, see brandsma_jomo.R.
"""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

HERE = Path(__file__).parent
REPO = HERE.parents[1]
DATA = REPO / "tests" / "data"
REFERENCE = json.loads((DATA / "brandsma_jomo.json").read_text())
#: Case name -> its data file; the frozen reference has one entry per case.
CASES = {"brandsma": DATA / "brandsma.csv", "brandsma_iqv_mar": DATA / "brandsma_iqv_mar.csv"}

#: Imputations and burn-in of mlmi's runs: the one place that sets this test's cost.
M = 10
BURN_IN = 500
#: Relative tolerance for the mean random-effect SDs (iqv slope, intercept, residual) against jomo's. On the
#: MAR case the Monte Carlo SE of the difference in the slope SD is about 3.5% with m = 10 (between-imputation
#: SD 0.042 of 0.46), so 10% is about 3 MCSEs.
SD_TOLERANCE = 0.10
#: Relative tolerance for mlmi's pooled SEs against jomo's (m = 10 against m = 20: the SE itself varies).
SE_TOLERANCE = 0.25
SD_TERMS = ["sd__iqv", "sd__(Intercept)", "sd__Observation"]


def reference_table(case: str, part: str, method: str = "jomo") -> pd.DataFrame:
    """A frozen table of one case: ``part`` fixed_effects or random_effects of ``method``, indexed by term."""
    return pd.DataFrame(REFERENCE["cases"][case][method][part]).set_index("term")


def acceptance_failures(case: str, fixed: pd.DataFrame, random: pd.DataFrame) -> list[str]:
    """Each way ``fixed`` (term, estimate) and ``random`` (term, estimate) miss jomo's frozen result.

    Fixed effects: |estimate - jomo| <= jomo's pooled SE. Random-effect SDs: relative difference
    <= SD_TOLERANCE. An empty list is a pass.
    """
    ref_fixed, ref_random = reference_table(case, "fixed_effects"), reference_table(case, "random_effects")
    ours_fixed, ours_random = fixed.set_index("term")["estimate"], random.set_index("term")["estimate"]
    failures = []
    if sorted(ours_fixed.index) != sorted(ref_fixed.index):
        failures.append(f"fixed-effect terms {sorted(ours_fixed.index)} != jomo's {sorted(ref_fixed.index)}")
    for term, row in ref_fixed.iterrows():
        if term in ours_fixed and not abs(ours_fixed[term] - row["estimate"]) <= row["std_error"]:
            failures.append(f"{term}: {ours_fixed[term]:.4f}, jomo {row['estimate']:.4f} "
                            f"(difference {(ours_fixed[term] - row['estimate']) / row['std_error']:+.2f} jomo SEs)")
    for term in SD_TERMS:
        if term not in ours_random:
            failures.append(f"{term} missing from the random effects")
            continue
        relative = ours_random[term] / ref_random.loc[term, "estimate"] - 1
        if not abs(relative) <= SD_TOLERANCE:
            failures.append(f"{term}: {ours_random[term]:.4f}, jomo {ref_random.loc[term, 'estimate']:.4f} "
                            f"({relative:+.1%}, tolerance {SD_TOLERANCE:.0%})")
    return failures


@pytest.fixture(scope="module", params=list(CASES))
def mlmi_run(request, tmp_path_factory) -> tuple[str, Path]:
    """The workflow run on one case's CSV with the multilevel imputation: (case, its results folder)."""
    case = request.param
    folder = tmp_path_factory.mktemp(case)
    config = {"scenario": case, "seed": 20261130, "data": {"source": str(CASES[case])},
              "imputation": {"method": "multilevel", "m": M, "burn_in": BURN_IN},
              "model": {"formula": REFERENCE["formula"], "reml": True}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(folder),
                           "--configfile", str(folder / "config.yaml"), "--cores", "2"],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    return case, folder / "results" / case


def test_reference_is_what_the_test_assumes():
    """The frozen reference is jomo's, with the model, data and terms the test compares."""
    assert REFERENCE["formula"] == "lpo ~ iqv + ses + (1 + iqv | sch)"
    missing = {"brandsma": {"sch": 0, "lpo": 0, "iqv": 16, "ses": 121},
               "brandsma_iqv_mar": {"sch": 0, "lpo": 0, "iqv": 1158, "ses": 121}}
    for case, path in CASES.items():
        ref = REFERENCE["cases"][case]
        data = pd.read_csv(path)
        assert list(data.columns) == ["sch", "lpo", "iqv", "ses"] and len(data) == ref["n"] == 3902
        assert data.isna().sum().to_dict() == ref["missing"] == missing[case]
        assert ref["jomo"]["m"] == 20 and ref["jomo"]["singular_fits"] == 0
        assert sorted(reference_table(case, "fixed_effects").index) == ["(Intercept)", "iqv", "ses"]
        assert set(SD_TERMS) <= set(reference_table(case, "random_effects").index)


@pytest.mark.parametrize("case", list(CASES))
def test_acceptance_can_fail(case):
    """jomo's own numbers pass the acceptance; moved by a little more than it allows, they fail."""
    fixed = reference_table(case, "fixed_effects").reset_index()
    random = reference_table(case, "random_effects").reset_index()
    assert acceptance_failures(case, fixed, random) == []
    for term in fixed["term"]:
        shifted = fixed.assign(estimate=fixed["estimate"] + 1.1 * fixed["std_error"] * (fixed["term"] == term))
        assert len(acceptance_failures(case, shifted, random)) == 1, term
    for term in SD_TERMS:
        scaled = random.assign(estimate=random["estimate"] * (1 + 1.5 * SD_TOLERANCE * (random["term"] == term)))
        assert len(acceptance_failures(case, fixed, scaled)) == 1, term
    assert acceptance_failures(case, fixed.iloc[1:], random)


def test_acceptance_tells_methods_apart_where_data_are_missing_at_random():
    """On the MAR case listwise deletion fails the acceptance (intercept 6.8 jomo SEs off, slope SD -39%),
    and so does mice's 2l.pan, whose imputation model ignores iqv's random slope (slope SD -14.5%);
    on the real holes both pass: those cannot tell methods apart."""
    for method, failing in (("listwise", ["(Intercept)", "iqv", "sd__iqv", "sd__(Intercept)"]),
                            ("mice_2l.pan", ["sd__iqv"])):
        for case, expected in (("brandsma_iqv_mar", failing), ("brandsma", [])):
            frozen = REFERENCE["cases"][case][method]
            failures = acceptance_failures(case, pd.DataFrame(frozen["fixed_effects"]),
                                           pd.DataFrame(frozen["random_effects"]))
            assert [failure.split(":")[0] for failure in failures] == expected, (method, case, failures)


def test_multilevel_imputation_matches_jomo(mlmi_run):
    """Issue 13's acceptance: mlmi's pooled fixed effects within one jomo SE of jomo's, the SDs close."""
    case, results = mlmi_run
    fixed = pd.read_csv(results / "pooled" / "fixed_effects.csv")
    random = pd.read_csv(results / "pooled" / "random_effects.csv")
    assert (fixed["m"] == M).all()
    failures = acceptance_failures(case, fixed, random)
    assert not failures, f"{case}: mlmi's multilevel imputation differs from jomo.lmer's:\n" + "\n".join(failures)


def test_multilevel_imputation_is_proper(mlmi_run):
    """The imputations differ where data are missing, and the pooled SEs are jomo's within SE_TOLERANCE."""
    case, results = mlmi_run
    fixed = pd.read_csv(results / "pooled" / "fixed_effects.csv").set_index("term")
    assert (fixed.loc[["iqv", "ses"], "riv"] > 1e-6).all(), fixed["riv"]
    relative = fixed["std_error"] / reference_table(case, "fixed_effects")["std_error"] - 1
    assert (relative.abs() <= SE_TOLERANCE).all(), f"{case}: pooled SEs relative to jomo's:\n{relative}"
