"""Property-based tests (hypothesis) of the formula parser, the config validator and Rubin's rules.

Issue 7, item 5. Every test is derandomized and keeps no example database, so CI runs the
same examples every time and nothing is written next to the tests. Pooled results are
compared with a relative tolerance plus the absolute floors that floating point needs
(see ``assert_pooled_close``); ``@example``s pin inputs that once broke something.
"""
import copy
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import stats

from mlmi.fit.formula import FormulaError, parse_formula
from mlmi.pool.rubin import barnard_rubin_df, pool_long
from mlmi.run.inputs import InputError, check_inputs, schema_problem

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT = yaml.safe_load((CONFIG / "config.yaml").read_text())
SCHEMA = yaml.safe_load((CONFIG / "schema.yaml").read_text())


def fuzz(max_examples: int):
    """Reproducible hypothesis settings: same examples on every run, no database, no deadline."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------
# 1. Formula parser
# --------------------------------------------------------------------------------------------

NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
names = st.from_regex(r"[A-Za-z_.][A-Za-z0-9_.]{0,7}", fullmatch=True)
blank = st.text(alphabet=" \t\n", max_size=2)
FORMULA_CHARS = "yabgx01 ~+-|()/:*^._,\t\n"


@st.composite
def valid_formulas(draw):
    """``y ~ a + b + (1 + c | g)`` in lme4's shapes, with random names and whitespace.

    Returns the text and what parsing it must give: response, fixed terms, slopes,
    random intercept, group.
    """
    response, group = draw(names), draw(names)
    fixed = draw(st.lists(names, max_size=4))
    slopes = draw(st.lists(names, max_size=3, unique=True))
    # (1 + c | g), (0 + c | g), (-1 + c | g) or the implied intercept (c | g); (1 | g) without slopes
    marker = draw(st.sampled_from(["1", "0", "-1", None]) if slopes else st.just("1"))
    tokens = list(slopes)
    if marker is not None:
        tokens.insert(draw(st.integers(0, len(slopes))), marker)

    def ws() -> str:
        return draw(blank)                               # fresh whitespace at every gap

    def plus(parts) -> str:
        return parts[0] + "".join(f"{ws()}+{ws()}{part}" for part in parts[1:])

    random_part = f"({ws()}{plus(tokens)}{ws()}|{ws()}{group}{ws()})"
    rhs_terms = list(fixed)
    rhs_terms.insert(draw(st.integers(0, len(fixed))), random_part)
    text = f"{ws()}{response}{ws()}~{ws()}{plus(rhs_terms)}{ws()}"
    return text, response, fixed, tuple(slopes), marker in ("1", None), group


def assert_formula_error(text: str) -> str:
    with pytest.raises(FormulaError) as error:
        parse_formula(text)
    message = str(error.value)
    assert message.startswith("model.formula"), message
    assert len(message.splitlines()) == 1, message
    return message


def parse_or_formula_error(text: str) -> None:
    """Garbage either parses into a sane MixedFormula or raises FormulaError, nothing else."""
    try:
        parsed = parse_formula(text)
    except FormulaError as error:
        assert str(error).startswith("model.formula"), str(error)
        assert len(str(error).splitlines()) == 1, str(error)
        return
    assert NAME.match(parsed.response) and parsed.bars, parsed
    for bar in parsed.bars:
        assert bar.factors and all(NAME.match(factor) for factor in bar.factors), parsed
        assert not bar.plain_slopes or all(NAME.match(slope) for slope in bar.slopes), parsed
        assert len(set(bar.slopes)) == len(bar.slopes), parsed
    assert parsed.fixed and "|" not in parsed.fixed and "~" not in parsed.fixed, parsed


@fuzz(300)
@given(valid_formulas())
def test_valid_formulas_parse_exactly(case):
    text, response, fixed, slopes, intercept, group = case
    parsed = parse_formula(text)
    assert parsed.response == response
    assert parsed.group == group
    assert parsed.random_terms == slopes
    assert parsed.random_intercept is intercept
    assert parsed.re_names == (["(Intercept)"] if intercept else []) + list(slopes)
    if fixed:
        assert [term.strip() for term in parsed.fixed.split("+")] == fixed
    else:
        assert parsed.fixed == "1"
    used = {response, group, *fixed, *slopes}
    extra = ["not_used_" + name for name in sorted(used)]
    assert parsed.variables(extra + sorted(used)) == sorted(used)


@fuzz(300)
@given(st.one_of(st.text(alphabet=FORMULA_CHARS, max_size=40), st.text(max_size=30)))
@example("y ~ x + (1 | g")
@example("y ~ ((1 | g)")
@example("~")
@example("")
def test_random_text_parses_or_raises_formula_error(text):
    parse_or_formula_error(text)


@st.composite
def edited_formulas(draw):
    """A valid formula with one character inserted, deleted or replaced."""
    text = draw(valid_formulas())[0]
    at = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from(FORMULA_CHARS))
    edit = draw(st.sampled_from(["insert", "delete", "replace"]))
    if edit == "insert":
        return text[:at] + char + text[at:]
    if edit == "delete":
        return text[:at] + text[at + 1:]
    return text[:at] + char + text[at + 1:]


@fuzz(300)
@given(edited_formulas())
def test_edited_formulas_parse_or_raise_formula_error(text):
    parse_or_formula_error(text)


@st.composite
def unbalanced_formulas(draw):
    """A valid formula with one parenthesis added or removed somewhere."""
    text = draw(valid_formulas())[0]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from("()")) + text[at:]
    parens = [i for i, c in enumerate(text) if c in "()"]
    at = draw(st.sampled_from(parens))
    return text[:at] + text[at + 1:]


@fuzz(200)
@given(unbalanced_formulas())
def test_unbalanced_parentheses_parse_or_raise_formula_error(text):
    parse_or_formula_error(text)


@fuzz(100)
@given(valid_formulas(), st.data())
def test_several_tildes_are_rejected(case, data):
    text = case[0]
    at = data.draw(st.integers(0, len(text)), label="at")
    assert_formula_error(text[:at] + data.draw(st.sampled_from(["~", " ~ z ", "~~"]), label="tilde") + text[at:])


@fuzz(100)
@given(valid_formulas())
def test_double_bar_splits_into_uncorrelated_terms_as_lme4(case):
    """``(1 + a + b || g)`` is ``(1 | g) + (0 + a | g) + (0 + b | g)`` (lme4's expandDoubleVerts)."""
    text, _, _, slopes, intercept, group = case
    parsed = parse_formula(text.replace("|", "||"))
    assert [(bar.intercept, bar.slopes) for bar in parsed.bars] == \
        [(True, ())] * intercept + [(False, (slope,)) for slope in slopes]
    assert all(bar.factors == (group,) for bar in parsed.bars)


@fuzz(100)
@given(valid_formulas(), names, st.sampled_from(["/", ":"]), blank, blank)
def test_nested_and_interaction_grouping_expand_as_lme4(case, inner, operator, before, after):
    """``(x | g/h)`` is ``(x | h:g) + (x | g)`` (lme4's expandSlash); ``(x | g:h)`` groups by g:h."""
    text, group = case[0], case[5]
    bar = text.rindex("|")
    close = text.rindex(")")
    parsed = parse_formula(text[:bar + 1] + f" {group}{before}{operator}{after}{inner} " + text[close:])
    expected = [(inner, group), (group,)] if operator == "/" else [(group, inner)]
    assert [bar.factors for bar in parsed.bars] == expected
    assert [bar.group for bar in parsed.bars] == [":".join(factors) if len(factors) > 1 else factors[0]
                                                 for factors in expected]


@fuzz(100)
@given(valid_formulas(), valid_formulas(), blank)
def test_two_random_parts_are_two_terms(case, other, ws):
    text, second = case[0], other[0]
    random_part = second[second.index("("):second.rindex(")") + 1]
    parsed = parse_formula(f"{text}{ws}+{ws}{random_part}")
    assert [bar.factors for bar in parsed.bars] == [(case[5],), (other[5],)] and not parsed.single
    assert [(bar.intercept, bar.slopes) for bar in parsed.bars] == [(case[4], case[3]), (other[4], other[3])]


SIMULATED_FORMULA = "mathach ~ minority + female + ses + meanses + (1 + ses | schid)"


@fuzz(40)
@given(st.data())
def test_unbalanced_parentheses_are_found_before_work(data):
    """Issue 7 §3: an unbalanced parenthesis is refused before any job, in one line.

    parse_formula may let the fixed part through (formulaic reads it later), but then
    check_inputs must refuse it with a one-line InputError.
    """
    text = SIMULATED_FORMULA
    if data.draw(st.booleans(), label="add"):
        at = data.draw(st.integers(0, len(text)), label="at")
        text = text[:at] + data.draw(st.sampled_from("()"), label="paren") + text[at:]
    else:
        at = data.draw(st.sampled_from([i for i, c in enumerate(text) if c in "()"]), label="at")
        text = text[:at] + text[at + 1:]
    config = copy.deepcopy(DEFAULT)
    config["model"]["formula"] = text
    try:
        parse_formula(text)
    except FormulaError:
        return
    with pytest.raises(InputError) as error:
        check_inputs(config)
    assert "model.formula" in str(error.value)
    assert len(str(error.value).splitlines()) == 1, str(error.value)


# --------------------------------------------------------------------------------------------
# 2. Config validator
# --------------------------------------------------------------------------------------------

def child_schema(schema: dict, key):
    """The schema of ``key`` inside an object or array schema (None if the key is undeclared)."""
    if schema.get("type") == "array":
        return schema.get("items")
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def walk(value, schema: dict, path=()):
    """Every (path, value, schema) of the config that the schema declares, parents first."""
    yield path, value, schema
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        sub = child_schema(schema, key)
        if sub is not None:
            yield from walk(child, sub, (*path, key))


NODES = list(walk(DEFAULT, SCHEMA))[1:]               # every declared key of the default config
CLOSED = [(path, schema) for path, value, schema in walk(DEFAULT, SCHEMA)
          if isinstance(value, dict) and schema.get("additionalProperties") is False]
BOUNDED = [(path, schema) for path, _, schema in NODES
           if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & set(schema)]
PROBABILITIES = sorted(DEFAULT["missingness"]["prob"])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10),
                         st.floats(-10, 10, allow_nan=False), st.text(max_size=6))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=6)
non_integral = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: not x.is_integer())
WRONG = {  # values that are not of the schema's type (bool is neither integer nor number in JSON Schema)
    "integer": [st.text(max_size=6), st.booleans(), st.none(), st.lists(json_scalars, max_size=2), non_integral,
                st.dictionaries(st.text(max_size=4), json_scalars, max_size=2)],
    "number": [st.text(max_size=6), st.booleans(), st.none(), st.lists(json_scalars, max_size=2),
               st.dictionaries(st.text(max_size=4), json_scalars, max_size=2)],
    "string": [st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
               st.lists(json_scalars, max_size=2), st.dictionaries(st.text(max_size=4), json_scalars, max_size=2)],
    "boolean": [st.integers(), st.floats(allow_nan=False), st.text(max_size=6), st.none(),
                st.lists(json_scalars, max_size=2)],
    "object": [st.integers(), st.text(max_size=6), st.booleans(), st.none(), st.lists(json_scalars, max_size=2)],
    "array": [st.integers(), st.text(max_size=6), st.booleans(), st.none(),
              st.dictionaries(st.text(max_size=4), json_scalars, max_size=2)],
}


def dotted(path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def put(config: dict, path, value) -> dict:
    mutated = copy.deepcopy(config)
    node = mutated
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return mutated


def assert_names(config: dict, path) -> str:
    problem = schema_problem(config, SCHEMA)
    assert problem is not None, f"mutation at {dotted(path)} passed the schema"
    assert problem.startswith(f"config key {dotted(path)}: "), problem
    assert len(problem.splitlines()) == 1, problem
    return problem


def test_default_config_is_valid():
    assert schema_problem(DEFAULT, SCHEMA) is None
    assert CLOSED and BOUNDED and PROBABILITIES     # the walks found something to mutate


@st.composite
def unknown_keys(draw):
    """A closed object of the default config and a key it does not declare: random or a near typo."""
    path, schema = draw(st.sampled_from(CLOSED))
    known = sorted(schema.get("properties", {}))
    random_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)
    typo = st.builds(lambda key, suffix: key + suffix, st.sampled_from(known), st.sampled_from(["s", "_", "1", "x"])) \
        if known else random_name
    key = draw(st.one_of(random_name, typo, st.sampled_from(known).map(str.upper) if known else random_name)
               .filter(lambda k: k not in known))
    return path, key


@fuzz(200)
@given(unknown_keys(), json_values)
def test_unknown_keys_name_their_parent(where, value):
    path, key = where
    problem = assert_names(put(DEFAULT, (*path, key), value), path)
    assert repr(key) in problem


@st.composite
def wrong_types(draw):
    path, _, schema = draw(st.sampled_from([node for node in NODES if str(node[2].get("type")) in WRONG]))
    return path, draw(st.one_of(WRONG[schema["type"]]))


@fuzz(300)
@given(wrong_types())
def test_wrong_types_name_the_key(mutation):
    path, value = mutation
    assert "is not of type" in assert_names(put(DEFAULT, path, value), path)


@fuzz(50)
@given(st.integers(max_value=1))
def test_m_below_two_names_imputation_m(m):
    assert_names(put(DEFAULT, ("imputation", "m"), m), ("imputation", "m"))


@fuzz(150)
@given(st.sampled_from(PROBABILITIES) | st.from_regex(r"[a-z]{1,8}", fullmatch=True),
       st.floats(max_value=0, exclude_max=True, allow_nan=False) | st.floats(min_value=1, allow_nan=False)
       | st.sampled_from([-1e-300, 1.0, 1 + 1e-15, math.inf, -math.inf]))
def test_probabilities_outside_zero_one_name_the_column(column, prob):
    path = ("missingness", "prob", column)
    assert_names(put(DEFAULT, path, prob), path)


@st.composite
def out_of_bounds(draw):
    """A bounded number of the default config set just outside (or far outside) its bounds."""
    path, schema = draw(st.sampled_from(BOUNDED))
    integer = schema.get("type") == "integer"
    sides = []
    for key, below in (("minimum", True), ("exclusiveMinimum", True), ("maximum", False), ("exclusiveMaximum", False)):
        if key in schema:
            bound, inclusive_bad = schema[key], key.startswith("exclusive")
            if integer:
                sides.append(st.integers(max_value=math.ceil(bound) - (0 if inclusive_bad else 1)) if below
                             else st.integers(min_value=math.floor(bound) + (0 if inclusive_bad else 1)))
            else:
                sides.append(st.floats(max_value=bound, exclude_max=not inclusive_bad, allow_nan=False,
                                       allow_infinity=False) if below
                             else st.floats(min_value=bound, exclude_min=not inclusive_bad, allow_nan=False,
                                            allow_infinity=False))
    return path, draw(st.one_of(sides))


@fuzz(200)
@given(out_of_bounds())
def test_values_out_of_bounds_name_the_key(mutation):
    path, value = mutation
    assert_names(put(DEFAULT, path, value), path)


def test_nan_is_refused_for_bounded_numbers():
    """YAML's .nan compares false with every bound, so a schema minimum/maximum never fires on it."""
    slipped = [dotted(path) for path, _ in BOUNDED if schema_problem(put(DEFAULT, path, math.nan), SCHEMA) is None]
    assert not slipped, f"NaN passes the schema at {slipped}"


@fuzz(100)
@given(st.integers(2, 10**6), st.sampled_from(PROBABILITIES) | st.from_regex(r"[a-z]{1,8}", fullmatch=True),
       st.floats(0, 1, exclude_max=True))
def test_valid_m_and_probabilities_pass(m, column, prob):
    config = put(put(DEFAULT, ("imputation", "m"), m), ("missingness", "prob", column), prob)
    assert schema_problem(config, SCHEMA) is None


# --------------------------------------------------------------------------------------------
# 3. Pooling arithmetic
# --------------------------------------------------------------------------------------------

TERMS = ["(Intercept)", "minority", "female", "ses", "meanses", "x"]
estimates = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
std_errors = st.floats(1e-3, 1e2, allow_nan=False, allow_infinity=False)
dfcoms = st.floats(3, 1e5, allow_nan=False) | st.just(math.inf)


@st.composite
def fits(draw, min_m=2, max_m=8):
    """m x k estimates and SEs of k terms (an m x k table each), term names, dfcom."""
    m = draw(st.integers(min_m, max_m))
    k = draw(st.integers(1, 4))
    terms = draw(st.permutations(TERMS))[:k]
    q = np.array(draw(st.lists(st.lists(estimates, min_size=k, max_size=k), min_size=m, max_size=m)), dtype=float)
    se = np.array(draw(st.lists(st.lists(std_errors, min_size=k, max_size=k), min_size=m, max_size=m)), dtype=float)
    return q.reshape(m, k), se.reshape(m, k), list(terms), draw(dfcoms)


def long_table(q, se, terms) -> pd.DataFrame:
    m, k = q.shape
    return pd.DataFrame({"imputation": np.repeat(np.arange(1, m + 1), k), "term": terms * m,
                         "estimate": q.ravel(), "std_error": se.ravel()})


def dfobs(dfcom, lambda_=0.0):
    return (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda_)


def assert_pooled_close(got: pd.DataFrame, want: pd.DataFrame, q, rtol: float) -> None:
    """``got`` equals ``want`` column by column up to ``rtol``, with two documented allowances.

    - Floors on the inputs' scale where a value can cancel to ~0: qbar (estimates of both
      signs), the statistic, b of nearly equal imputations (b ~ m (eps max|Q|)^2, not 0),
      riv, lambda and fmi (1e-15), and the information 1/df instead of df (df -> inf as b -> 0);
      and 1e-300 everywhere, for estimates so small that their squares are subnormal.
    - df goes through dfobs = ... * (1 - lambda), and 1 - lambda loses about log10(riv)
      digits when lambda is near 1 (mice computes it the same way). So df may differ by
      8 eps riv more, and the interval and p-value by that times their sensitivity to log df.
    NaN on both sides counts as equal here: the range test reports NaN on its own.
    Equal infinities (an interval overflowing at df ~ 0) are equal.
    """
    assert list(got["term"]) == list(want["term"])
    assert (got["m"] == want["m"]).all()
    assert (got["dfcom"].to_numpy() == want["dfcom"].to_numpy()).all()
    scale = np.abs(q).max(axis=0)                      # largest |estimate| per term
    se, df, riv = (want[c].to_numpy(dtype=float) for c in ("std_error", "df", "riv"))
    half = (want["conf_high"] - want["conf_low"]).to_numpy() / 2
    rtol_df = rtol + 8 * np.finfo(float).eps * riv
    h = 1e-4                                            # finite-difference step in log df
    with np.errstate(invalid="ignore"):
        quantile = [stats.t.ppf(0.975, d) for d in (df, df * (1 + h))]
        p_value = [2 * stats.t.sf(np.abs(want["statistic"].to_numpy()), d) for d in (df, df * (1 + h))]
        half_sensitivity = np.nan_to_num(np.abs(np.log(quantile[1] / quantile[0])) / h)
        p_sensitivity = np.nan_to_num(np.abs(p_value[1] - p_value[0]) / h)
    floors = {"estimate": rtol * scale,
              "conf_low": rtol * (scale + half) + half_sensitivity * rtol_df * half,
              "conf_high": rtol * (scale + half) + half_sensitivity * rtol_df * half,
              "statistic": rtol * scale / se, "p_value": rtol + p_sensitivity * rtol_df,
              "b": (rtol * scale) ** 2, "riv": 1e-15, "lambda": 1e-15, "fmi": 1e-15 + rtol_df / (1 + riv),
              "std_error": 0.0, "ubar": 0.0, "t": 0.0}
    for column, atol in floors.items():
        a, b = got[column].to_numpy(dtype=float), want[column].to_numpy(dtype=float)
        atol = atol + 1e-300                            # below that, subnormal round-off is all there is
        with np.errstate(invalid="ignore"):
            same = (a == b) | (np.abs(a - b) <= atol + rtol * np.abs(b)) | (np.isnan(a) & np.isnan(b))
        assert np.all(same), f"{column}: {a} != {b}"
    a, b = 1 / got["df"].to_numpy(dtype=float), 1 / df
    same = (a == b) | (np.abs(a - b) <= 1e-15 + rtol_df * np.abs(b)) | (np.isnan(a) & np.isnan(b))
    assert np.all(same), f"df: {got['df'].to_numpy()} != {df}"


@fuzz(150)
@given(fits(), st.data())
def test_permuting_imputations_changes_nothing(fit, data):
    q, se, terms, dfcom = fit
    order = np.array(data.draw(st.permutations(range(len(q))), label="order"))
    base = pool_long(long_table(q, se, terms), dfcom)
    permuted = pool_long(long_table(q[order], se[order], terms), dfcom)
    assert_pooled_close(permuted, base, q, rtol=1e-12)
    # the table's row order and the imputation labels do not matter either, only term order does
    table = long_table(q, se, terms)
    relabeled = table.assign(imputation=table["imputation"].map(dict(enumerate(order * 7 + 3, start=1))))
    shuffled = relabeled.iloc[data.draw(st.permutations(range(len(table))), label="rows")]
    shuffled = shuffled.sort_values("term", key=lambda s: s.map(terms.index), kind="stable")
    assert_pooled_close(pool_long(shuffled, dfcom), base, q, rtol=1e-12)


@fuzz(150)
@given(st.integers(2, 20), st.lists(estimates, min_size=1, max_size=4),
       st.lists(std_errors, min_size=4, max_size=4), st.floats(3, 1e5, allow_nan=False))
@example(3, [0.1], [1.0] * 4, 10.0)        # the mean of 0.1, 0.1, 0.1 is not 0.1: b ~ 1e-34, not 0
@example(3, [1.94711602237992e-76], [1.0] * 4, 3.0)  # b ~ 1e-183 > 0, lambda**2 underflows to 0: df NaN
def test_identical_imputations_give_b_zero_and_df_dfobs(m, row, se_row, dfcom):
    k = len(row)
    ses = np.array(se_row[:k])
    q, se = np.tile(row, (m, 1)), np.tile(ses, (m, 1))
    pooled = pool_long(long_table(q, se, TERMS[:k]), dfcom)
    for column in ("b", "riv", "lambda"):
        np.testing.assert_allclose(pooled[column], 0, atol=1e-12, err_msg=column)
    np.testing.assert_allclose(pooled["df"], dfobs(dfcom), rtol=1e-12)
    np.testing.assert_allclose(pooled["estimate"], row, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pooled["std_error"], ses, rtol=1e-12)
    np.testing.assert_allclose(pooled["fmi"], 2 / (dfobs(dfcom) + 3), rtol=1e-9)
    # the same limits straight from barnard_rubin_df with b = 0: df = dfobs, and df = inf for dfcom = inf
    np.testing.assert_allclose(barnard_rubin_df(m, np.zeros(k), se[0] ** 2, dfcom), dfobs(dfcom), rtol=1e-12)
    assert np.all(np.isinf(barnard_rubin_df(m, np.zeros(k), se[0] ** 2, math.inf)))
    wide = pool_long(long_table(q, se, TERMS[:k]), math.inf)
    assert np.all(wide["df"] > 1e12), wide["df"]       # large-sample limit: df = dfold -> inf as b -> 0


#: Columns that scale with the variable; statistic, df, riv, lambda, fmi and p_value must not change.
SCALES = ("estimate", "std_error", "conf_low", "conf_high")


@fuzz(150)
@given(fits(), st.floats(1e-3, 1e3), st.data())
def test_scaling_a_variable_scales_its_estimate_and_se(fit, c, data):
    q, se, terms, dfcom = fit
    j = data.draw(st.integers(0, len(terms) - 1), label="term")
    q2, se2 = q.copy(), se.copy()
    q2[:, j] *= c
    se2[:, j] *= c
    base = pool_long(long_table(q, se, terms), dfcom)
    scaled = pool_long(long_table(q2, se2, terms), dfcom)
    others = [i for i in range(len(terms)) if i != j]
    pd.testing.assert_frame_equal(scaled.iloc[others], base.iloc[others])    # other terms untouched
    back = scaled.copy()
    for column in SCALES:
        back[column] = scaled[column] / np.where(np.arange(len(terms)) == j, c, 1.0)
    for column in ("ubar", "b", "t"):
        back[column] = scaled[column] / np.where(np.arange(len(terms)) == j, c * c, 1.0)
    assert_pooled_close(back, base, q, rtol=1e-9)


@fuzz(200)
@given(fits())
@example((np.array([[0.0], [1e-100]]), np.ones((2, 1)), ["x"], 10.0))   # 0 < lambda < 1e-154: df was NaN
def test_df_between_zero_and_dfobs_and_fmi_in_unit_interval(fit):
    q, se, terms, dfcom = fit
    pooled = pool_long(long_table(q, se, terms), dfcom)
    df, lam = pooled["df"].to_numpy(), pooled["lambda"].to_numpy()
    assert not pooled.drop(columns=["term", "df", "dfcom"]).isna().any().any(), pooled
    assert np.all(df > 0), pooled
    if math.isfinite(dfcom):
        assert np.all(df <= dfobs(dfcom, lam) * (1 + 1e-12)), pooled
        assert np.all(df <= dfobs(dfcom) * (1 + 1e-12)), pooled
    assert np.all((pooled["fmi"] >= 0) & (pooled["fmi"] <= 1)), pooled
    assert np.all((lam >= 0) & (lam < 1)), pooled
    assert np.all((pooled["p_value"] >= 0) & (pooled["p_value"] <= 1)), pooled
    assert np.all(pooled["conf_low"] <= pooled["estimate"]) and np.all(pooled["estimate"] <= pooled["conf_high"])


@fuzz(100)
@given(fits(min_m=1, max_m=10))
def test_m_is_the_number_of_imputations_and_at_least_two(fit):
    q, se, terms, dfcom = fit
    table = long_table(q, se, terms)
    if len(q) < 2:
        with pytest.raises(ValueError, match="at least 2 imputations"):
            pool_long(table, dfcom)
        return
    pooled = pool_long(table, dfcom)
    assert (pooled["m"] == len(q)).all() and (pooled["m"] >= 2).all()
    assert list(pooled["term"]) == terms


def test_no_imputation_at_all_raises():
    empty = pd.DataFrame({"imputation": [], "term": [], "estimate": [], "std_error": []})
    with pytest.raises(ValueError, match="at least 2 imputations"):
        pool_long(empty, 10.0)
