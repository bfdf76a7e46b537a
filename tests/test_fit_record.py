"""The typed, versioned fit record (``mlmi.fit.record``): what the fit stage writes reads back unchanged, a record of
another version (or of none) is refused in one line naming the file and what to do, and every accessor says what
the JSON on disk says, for a model of one grouping factor, of two crossed factors and a GLMM.

The records are real: the fit stage's own (``stages.fit``) on tests/data (small.csv, penicillin.csv and cbpp.csv,
whose lme4 fits test_fit, test_fit_factors and test_glmm check); each accessor is compared with the file's JSON read
by ``json`` here, not through mlmi.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlmi import cli
from mlmi.fit.record import RECORD_VERSION, FitRecord, RecordVersionError
from mlmi.report.run_report import write_report
from mlmi.run import io
from mlmi.run import stages

DATA = Path(__file__).parent / "data"

#: name -> (data file, formula, reml, family): one factor with a slope, two crossed factors, a binomial GLMM.
CASES = {
    "single": ("small.csv", "mathach ~ ses + (1 + ses | schid)", True, None),
    "crossed": ("penicillin.csv", "diameter ~ 1 + (1 | plate) + (1 | sample)", True, None),
    "glmm": ("cbpp.csv", "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)", False,
             {"family": "binomial", "link": "logit", "nagq": 1}),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Each case's record as the fit stage writes it: name -> path of ``fits/imp_1.json``."""
    paths = {}
    for name, (data, formula, reml, family) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        io.write_parquet(pd.read_csv(DATA / data), folder / "data.parquet")
        paths[name] = folder / "fits" / "imp_1.json"
        paths[name].parent.mkdir()
        stages.fit(folder / "data.parquet", paths[name], model={"formula": formula, "reml": reml, **(family or {})},
                   label="imputation 1")
    return paths


def on_disk(path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("case", CASES)
def test_a_written_record_reads_back_unchanged(written, case):
    raw = on_disk(written[case])
    assert raw["record_version"] == RECORD_VERSION
    assert FitRecord.from_json(written[case]).to_json() == raw
    assert FitRecord.from_json(raw).to_json() == raw
    io.write_json(FitRecord.from_json(raw).to_json(), written[case].with_name("again.json"))
    assert written[case].with_name("again.json").read_bytes() == written[case].read_bytes()


def test_the_record_on_disk_is_the_fit_s_mapping_plus_its_version(written):
    from mlmi.fit.lmer import fit_mixed

    made = fit_mixed(pd.read_csv(DATA / "small.csv"), CASES["single"][1], label="imputation 1")
    raw = on_disk(written["single"])
    assert set(raw) == set(made) | {"record_version", "r2"}        # r2: the fit stage's, with the data at hand
    assert list(raw)[0] == "record_version"


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_a_record_of_another_version_is_one_line_naming_the_file_and_what_to_do(written, tmp_path, version):
    raw = on_disk(written["single"])
    if version is None:
        del raw["record_version"]
    else:
        raw["record_version"] = version
    path = tmp_path / "results" / "hsb" / "fits" / "imp_3.json"
    path.parent.mkdir(parents=True)
    io.write_json(raw, path)
    with pytest.raises(RecordVersionError) as error:
        FitRecord.from_json(path)
    said = 0 if version is None else version
    assert str(error.value) == (f"{path} is a fit record of version {said!r}; this mlmi reads version "
                                f"{RECORD_VERSION}: rerun the fit step (delete {path.parent})")
    with pytest.raises(RecordVersionError, match=r"^this mapping is a fit record of version .*: make it again with "
                                                 r"this mlmi's fit stage \(mlmi.run.stages.fit\)$"):
        FitRecord.from_json(raw)


def test_a_comparison_fit_of_another_version_names_the_run_s_fits_folder(written, tmp_path):
    path = tmp_path / "run" / "fits" / "compare" / "no_slope" / "imp_1.json"
    path.parent.mkdir(parents=True)
    io.write_json({k: v for k, v in on_disk(written["single"]).items() if k != "record_version"}, path)
    with pytest.raises(RecordVersionError, match=f"delete {tmp_path / 'run' / 'fits'}\\)$"):
        FitRecord.from_json(path)


@pytest.mark.parametrize("case", CASES)
def test_the_accessors_say_what_the_json_says(written, case):
    raw, fit = on_disk(written[case]), FitRecord.from_json(written[case])
    terms = [row["term"] for row in raw["fixed_effects"]]
    assert fit.terms == terms == raw["vcov"]["terms"]
    assert fit.estimates == {row["term"]: row["estimate"] for row in raw["fixed_effects"]}
    assert fit.fixed_effects.to_dict("records") == raw["fixed_effects"]
    np.testing.assert_array_equal(fit.vcov, np.array(raw["vcov"]["matrix"]))
    table = fit.wald_table()
    np.testing.assert_allclose(table["conf_high"] - table["estimate"],
                               1.959963984540054 * table["std_error"], rtol=1e-14)
    listed = raw["random_effects"] if isinstance(raw["random_effects"], list) else [raw["random_effects"]]
    assert [(t.group, t.terms, t.sd, t.cor) for t in fit.variance_components] == \
        [(t["group"], t["terms"], t["sd"], t["cor"]) for t in listed]
    for term, part in zip(fit.variance_components, listed):
        np.testing.assert_array_equal(term.cov, np.array(part["cov"]))
    modes = raw["ranef"] if isinstance(raw["ranef"], list) else [raw["ranef"]]
    assert [(m.group, m.levels, m.terms) for m in fit.ranef] == [(m["group"], m["levels"], m["terms"]) for m in modes]
    for got, part in zip(fit.ranef, modes):
        np.testing.assert_array_equal(got.modes, np.array(part["modes"]))
        np.testing.assert_array_equal(got.cond_var, np.array(part["cond_var"]))
    convergence = raw["convergence"]
    assert (fit.converged, fit.singular, fit.warnings, fit.max_abs_gradient, fit.failure) == \
        (convergence["converged"], convergence["singular"], convergence["warnings"],
         convergence["max_abs_gradient"], None)
    assert (fit.deviance, fit.reml_criterion, fit.loglik, fit.aic, fit.bic, fit.npar, fit.dfcom) == \
        tuple(raw[key] for key in ("deviance", "reml_criterion", "loglik", "aic", "bic", "npar", "dfcom"))
    assert (fit.n_obs, fit.n_groups, fit.n_levels, fit.factors, fit.dropped, fit.sigma, fit.formula, fit.label) == \
        tuple(raw[key] for key in ("n_obs", "n_groups", "n_levels", "factors", "dropped", "sigma", "formula", "label"))
    assert fit.r2 == raw.get("r2")
    parameters = raw.get("variance_parameters")
    if parameters is None:
        assert fit.variance_parameters is None
    else:
        got = fit.variance_parameters
        assert (got.groups, got.terms, got.scales, got.estimate, got.problem) == \
            tuple(parameters[key] for key in ("groups", "terms", "scales", "estimate", "problem"))
        np.testing.assert_array_equal(got.vcov, np.array(parameters["vcov"]))


def test_one_factor_several_factors_and_a_glmm_read_alike(written):
    single, crossed, glmm = (FitRecord.from_json(written[case]) for case in CASES)
    assert [t.group for t in single.variance_components] == ["schid"]
    assert [t.group for t in crossed.variance_components] == ["plate", "sample"]     # lme4's order of terms
    assert [m.modes.shape for m in crossed.ranef] == [(24, 1), (6, 1)]
    assert [row["term"] for row in single.random_parameters] == \
        ["sd__(Intercept)", "sd__ses", "cor__(Intercept).ses", "sd__Observation"]
    assert [(row["group"], row["term"]) for row in crossed.random_parameters] == \
        [("plate", "sd__(Intercept)"), ("sample", "sd__(Intercept)"), ("Residual", "sd__Observation")]
    assert [row["term"] for row in glmm.random_parameters] == ["sd__(Intercept)"]      # no residual SD
    assert (single.model_kind, single.estimation, single.ratio_kind, single.link_scale, single.is_linear) == \
        ("linear mixed model", "REML", None, None, True)
    assert (glmm.model_kind, glmm.estimation, glmm.ratio_kind, glmm.link_scale, glmm.is_linear) == \
        ("generalized linear mixed model (binomial family, logit link)", "maximum likelihood (Laplace approximation)",
         "odds ratio", "log odds", False)
    assert single.r2 is not None and crossed.r2 is not None and glmm.r2 is None
    assert glmm.variance_parameters is None and crossed.variance_parameters.groups == ["plate", "sample", "Residual"]


def old_results(folder, record: dict):
    """A results folder as an mlmi before record versions left it: the summary's tables, and fits without a
    version."""
    (folder / "pooled").mkdir(parents=True)
    for name in ("fixed_effects", "varcorr", "model_info"):
        (folder / "pooled" / f"{name}.csv").write_text("term\n")
    (folder / "fits").mkdir()
    old = {k: v for k, v in record.items() if k != "record_version"}
    for label in ("imp_1", "imp_2", "listwise"):
        io.write_json(old, folder / "fits" / f"{label}.json")
    return folder


def test_a_results_folder_made_before_record_versions_is_refused_in_one_line(written, tmp_path, capsys):
    folder = old_results(tmp_path / "results" / "hsb", on_disk(written["single"]))
    expected = (f"{folder / 'fits' / 'imp_1.json'} is a fit record of version 0; this mlmi reads version "
                f"{RECORD_VERSION}: rerun the fit step (delete {folder / 'fits'})")
    assert cli.main(["summary", str(folder)]) == 2
    assert capsys.readouterr().err == f"mlmi: {expected}\n"
    with pytest.raises(RecordVersionError) as error:           # the report: before it reads anything else
        write_report(tmp_path / "report.html", pooled_dir=folder / "pooled", missing_path=tmp_path / "absent.parquet",
                     fit_paths=[folder / "fits" / "imp_1.json"], listwise_fit_path=folder / "fits" / "listwise.json",
                     imputed_paths=[], formula=CASES["single"][1], scenario="hsb")
    assert str(error.value) == expected
    with pytest.raises(RecordVersionError, match="^[^\n]*$"):   # the pool stage
        stages.pool_fits([folder / "fits" / "imp_1.json", folder / "fits" / "imp_2.json"],
                         folder / "fits" / "listwise.json", outputs={})
