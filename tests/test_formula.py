"""The lme4 formula parser: what it reads, and the clear errors for what it cannot."""
import numpy as np
import pandas as pd
import pytest

from mlmi.fit.formula import FormulaError, fixed_design, parse_formula


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
    ("y ~ x + log(x) | g", "a '\\|' outside parentheses"),
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
    ("y ~ a + (1 | g) (0 + a | g)", "not joined to the other terms by '\\+'"),
    ("y ~ `a + (1 | g)", "'`' is not closed"),
    ("y ~ `` + (1 | g)", "empty `` quotes"),
    ("y ~ a + (1 | `a b`+c)", "grouping factor '`a b`\\+c'"),
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


#: Data of every kind a fixed part of plain columns may name: floats, integers, nullable integers without holes,
#: names with spaces and dots, a column named as a function formulaic knows; and kinds it codes otherwise.
PLAIN = pd.DataFrame({"x": [1.5, 2.0, -3.25, 4.0], "n": [1, 2, 3, 4], "k": pd.array([3, 1, 2, 2], dtype="Int64"),
                      "x y": [0.1, 0.2, 0.3, 0.5], "school.id": [1.0, 2.0, 1.0, 2.0], "log": [1.0, 0.0, 1.0, 1.0],
                      "flag": [True, False, True, True], "sex": ["a", "b", "a", "b"],
                      "cat": pd.Categorical([1, 2, 1, 2]), "hole": [1.0, np.nan, 2.0, 3.0]})


@pytest.mark.parametrize("fixed", ["x", "x + n + k", "1 + x + n", "0 + x + n", "n + x", "x + x + n", "x + `x`",
                                   "`x y` + `school.id` + x", "school.id + x", "log + x", "x + 1", "x + 0", "-1 + x",
                                   "0 + x + 1", "1 + x + 0"])
def test_plain_columns_are_built_as_formulaic_builds_them(fixed, monkeypatch):
    """The fixed part of plain numeric columns is built without formulaic: the same names, values (to the bit)
    and memory order as formulaic's matrix, so that every fit downstream is the same to the last bit."""
    import mlmi.fit.formula as formula

    plain = fixed_design(fixed, PLAIN)
    monkeypatch.setattr(formula, "_plain_design", lambda fixed, data: None)
    reference = fixed_design(fixed, PLAIN)
    assert plain.names == reference.names and plain.factors == reference.factors == {}
    assert plain.X.dtype == reference.X.dtype and plain.X.flags.f_contiguous == reference.X.flags.f_contiguous
    np.testing.assert_array_equal(plain.X, reference.X)


@pytest.mark.parametrize("fixed", ["flag", "sex", "cat", "hole", "absent", "x - 1", "x:n", "log(x)", "0", "a b",
                                   "x + sex"])
def test_anything_but_plain_numeric_columns_is_left_to_formulaic(fixed):
    from mlmi.fit.formula import _plain_design

    assert _plain_design(fixed, PLAIN) is None


#: Fixed parts R users write, and the columns lme4 makes of them (on ``SHAPES``' data).
ALLOWED_FORMS = [
    ("log(x)", ["log(x)"]),
    ("poly(x, 2)", ["poly(x, 2)[1]", "poly(x, 2)[2]"]),
    ("factor(g)", ["factor(g)b", "factor(g)c"]),
    ("C(g)", ["C(g)b", "C(g)c"]),
    ("C(g, contr.sum)", ["C(g, contr.sum)S.a", "C(g, contr.sum)S.b"]),
    ("x:z", ["x:z"]),
    ("x*z", ["x", "z", "x:z"]),
    ("(x + z)^2", ["x", "z", "x:z"]),
    ("`x y` + I(`x y`^2)", ["`x y`", "I(`x y`^2)"]),
    ("I(x^2)", ["I(x^2)"]),
    ("scale(x) + center(z)", ["scale(x)", "center(z)"]),
    ("sqrt(x) + log1p(x) + abs(z) + log10(x) + log2(x) + exp(z)",
     ["sqrt(x)", "log1p(x)", "abs(z)", "log10(x)", "log2(x)", "exp(z)"]),
    ("log(school.id) + I(school.id * 2)", ["log(school.id)", "I(school.id * 2)"]),  # R's dots, not Python's
    ("I(x * 1e-3) - 1", ["I(x * 0.001)"]),                    # numbers as R prints them
]
SHAPES = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "z": [0.0, 1.0, 0.0, 1.0], "x y": [1.0, 2.0, 3.0, 5.0],
                       "g": ["a", "b", "c", "b"], "school.id": [1.0, 2.0, 1.0, 2.0]})


@pytest.mark.parametrize("fixed, names", ALLOWED_FORMS)
def test_what_r_users_write_passes_the_allow_list_and_builds(fixed, names):
    parsed = parse_formula(f"y ~ {fixed} + (1 | g)")
    design = fixed_design(parsed.fixed, SHAPES)
    assert [name for name in design.names if name != "(Intercept)"] == names


def test_hat_is_the_power_inside_a_function_and_crossing_outside_as_in_r():
    x = SHAPES["x"].to_numpy()
    squares = fixed_design(parse_formula("y ~ I(x^2) + I(-x^2 + 1) + I(2^x^2) + (1 | g)").fixed, SHAPES)
    np.testing.assert_array_equal(squares.X[:, 1:], np.column_stack([x**2, -x**2 + 1, 2.0 ** (x**2)]))
    assert squares.names[1:] == ["I(x^2)", "I(-x^2 + 1)", "I(2^x^2)"]
    crossed = fixed_design(parse_formula("y ~ (x + z)^2 + (1 | g)").fixed, SHAPES)
    np.testing.assert_array_equal(crossed.X[:, 3], x * SHAPES["z"].to_numpy())


@pytest.mark.parametrize("text, columns, factors, slopes", [
    ("y ~ x + (1 + x | g)", ("g",), [("g",)], ["x"]),
    ("y ~ x + (1 | school/class)", ("school", "class"), [("class", "school"), ("school",)], []),
    ("y ~ x + (1 | school) + (1 + x | class)", ("school", "class"), [("school",), ("class",)], ["x"]),
    ("y ~ x + (1 + x || g) + (1 | h:k) + (0 + log(z) | g)", ("g", "h", "k"), [("g",), ("h", "k")], ["x"]),
    ("y ~ x + (1 | `class id`:school)", ("class id", "school"), [("class id", "school")], []),
])
def test_grouping_columns_in_the_order_written_and_factors_in_lme4s(text, columns, factors, slopes):
    formula = parse_formula(text)
    assert formula.grouping_columns == columns and formula.outer_group == columns[0]
    assert formula.grouping_factors == factors and formula.slope_columns == slopes
