"""The lme4 formula parser: what it reads, and the clear errors for what it cannot."""
import pytest

from mlmi.formula import FormulaError, parse_formula


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
