"""The lme4 formula parser: what it reads, and the clear errors for what it cannot."""
import numpy as np
import pandas as pd
import pytest

from mlmi.formula import FormulaError, fixed_design, parse_formula


def test_vignette_formula():
    f = parse_formula("mathach ~ minority + female + ses + meanses + (1 + ses | schid)")
    assert (f.response, f.fixed, f.group) == ("mathach", "minority + female + ses + meanses", "schid")
    assert f.re_names == ["(Intercept)", "ses"]
    assert f.variables(["schid", "minority", "female", "ses", "mathach", "size", "meanses"]) == [
        "schid", "minority", "female", "ses", "mathach", "meanses"]


@pytest.mark.parametrize("text, fixed, re_names", [
    ("y ~ x + (1 | g)", "x", ["(Intercept)"]),
    ("y ~ (1|g) + x", "x", ["(Intercept)"]),
    ("y ~ x + (x | g)", "x", ["(Intercept)", "x"]),          # the intercept is implied, as in lme4
    ("y ~ x + (0 + x | g)", "x", ["x"]),
    ("y ~ x + (-1 + x | g)", "x", ["x"]),
    ("y ~ (1 | g)", "1", ["(Intercept)"]),
    ("y ~ x + z + (1 + x + z | g)", "x + z", ["(Intercept)", "x", "z"]),
])
def test_supported_shapes(text, fixed, re_names):
    parsed = parse_formula(text)
    assert parsed.fixed == fixed and parsed.re_names == re_names and parsed.group == "g"


@pytest.mark.parametrize("text, message", [
    ("y ~ x", "no random-effects term"),
    ("y x + (1 | g)", "exactly one '~'"),
    ("log(y) ~ x + (1 | g)", "must be one column name"),
    ("y ~ x + (1 | g) + (1 | h)", "one grouping factor"),
    ("y ~ x + (1 || g)", "'||'"),
    ("y ~ x + (1 | a/b)", "nested"),
    ("y ~ x + (1 | a:b)", "nested"),
    ("y ~ x + (log(x) | g)", "cannot read the random part"),
    ("y ~ x + (x:z | g)", "plain column names"),
    ("y ~ x + (0 | g)", "no terms"),
    ("y ~ x + (1 + x + x | g)", "repeated"),
])
def test_unsupported_syntax_gets_a_clear_error(text, message):
    with pytest.raises(FormulaError, match=message) as error:
        parse_formula(text)
    assert "model.formula" in str(error.value)


@pytest.mark.parametrize("text", ["y ~ (x + (1 | g)", "y ~ x) + (1 | g)", "y ~ x + (1 | g))"])
def test_unbalanced_parentheses_are_named(text):
    with pytest.raises(FormulaError, match="unbalanced parentheses"):
        parse_formula(text)


def test_quoted_names_in_response_fixed_part_slopes_and_group():
    f = parse_formula("`math score` ~ `ses score` + sex + (1 + `ses score` | `school id`)")
    assert (f.response, f.group, f.random_terms) == ("math score", "school id", ("ses score",))
    assert f.fixed == "`ses score` + sex"                                 # formulaic reads the quotes
    assert f.re_names == ["(Intercept)", "`ses score`"]                  # lme4's names keep them
    assert f.variables(["school id", "sex", "ses score", "math score", "ses"]) == [
        "school id", "sex", "ses score", "math score"]
    dotted = parse_formula("mathach ~ ses.c + (1 + ses.c | school.id)")
    assert (dotted.group, dotted.re_names) == ("school.id", ["(Intercept)", "ses.c"])


@pytest.mark.parametrize("text, message", [
    ("y ~ a (1 | g)", "not joined to the other terms by '\\+'"),
    ("y ~ (1 | g) a", "not joined to the other terms by '\\+'"),
    ("y ~ a + (1 | g) (0 + a | g)", "2 random-effects terms"),
    ("y ~ `a + (1 | g)", "'`' is not closed"),
    ("y ~ `` + (1 | g)", "empty `` quotes"),
    ("y ~ a + (1 | `a b`/c)", "grouping factor '`a b`/c'"),
])
def test_missing_plus_and_bad_quotes_are_one_line_errors(text, message):
    with pytest.raises(FormulaError, match=message) as error:
        parse_formula(text)
    assert str(error.value).startswith("model.formula") and "\n" not in str(error.value)


def test_factors_are_treatment_coded_against_the_first_sorted_level_with_lme4_names():
    data = pd.DataFrame({"sex": ["girl", "boy", "girl", "boy"], "code": [2, 10, 1, 2], "x y": [0.5, 1.0, 2.0, 3.0]})
    design = fixed_design("sex * `x y` + factor(code) + C(code, contr.treatment(base=2))", data)
    assert design.names == ["(Intercept)", "sexgirl", "`x y`", "factor(code)2", "factor(code)10",
                            "C(code, contr.treatment(base=2))1", "C(code, contr.treatment(base=2))10",
                            "sexgirl:`x y`"]
    assert design.factors["sex"] == {"levels": ["boy", "girl"], "reference": "boy"}
    assert design.factors["factor(code)"] == {"levels": ["1", "2", "10"], "reference": "1"}     # 2 < 10, as numbers
    assert design.factors["C(code, contr.treatment(base=2))"]["reference"] == "2"
    girl, level10 = (data["sex"] == "girl").to_numpy(float), (data["code"] == 10).to_numpy(float)
    np.testing.assert_array_equal(design.X[:, 1], girl)
    np.testing.assert_array_equal(design.X[:, 4], level10)
    np.testing.assert_array_equal(design.X[:, 7], girl * data["x y"])
    # integer codes held as floats (CSV columns with holes) name their levels alike: 2, not 2.0
    assert fixed_design("factor(code)", data.astype({"code": float})).names == design.names[:1] + design.names[3:5]
    assert parse_formula("y ~ C(a) + factor(`b c`) + C(d, contr.sum) + (1 | g)").coded_factors == ["a", "b c", "d"]


def test_fixed_part_errors_of_formulaic_are_one_line():
    with pytest.raises(ValueError, match="Missing operator between `a` and `b`") as error:
        fixed_design("a b", pd.DataFrame({"a": [1.0], "b": [2.0]}))
    assert "\n" not in str(error.value)
