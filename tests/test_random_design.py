"""Random-effects structures (issue 16, item 1) against lme4's own expansion of the same formulas.

lme4_bars.json holds, for each formula, lme4 1.1-31's ``findbars`` and the structure ``lFormula``
builds on bars.csv (``reTrms``: Gp, cnms, flist, its assign and levels); tests/data/lme4_bars.R
made both files. The formulas cover several terms, crossed factors, nesting ``a/b`` and
``a/b/c``, interactions ``a:b`` (with a combination that does not occur), ``||``, ``0 + x``,
several terms on one factor and random slopes of a text factor, and lme4's reordering of terms.
"""
import json
from pathlib import Path

import pandas as pd
import pytest

from mlmi.fit.formula import FormulaError, parse_formula
from mlmi.fit.random_design import random_effects

DATA = Path(__file__).parent / "data"
LME4 = json.loads((DATA / "lme4_bars.json").read_text())["cases"]
CASES = {case["formula"][0]: case for case in LME4}


def spelled_out(bar: str) -> str:
    """lme4's deparsed term with its intercept spelled out, as mlmi names terms: 'x | g' is '1 + x | g'."""
    terms, group = bar.split(" | ")
    return bar if terms.split(" ")[0] in ("0", "1") else f"1 + {terms} | {group}"


@pytest.mark.parametrize("text", CASES)
def test_terms_expand_as_lme4_findbars(text):
    assert [bar.lme4_text for bar in parse_formula(text).bars] == [spelled_out(b) for b in CASES[text]["bars"]]


@pytest.mark.parametrize("text", CASES)
def test_structure_on_data_is_lme4_retrms(text):
    """Gp, cnms (names and columns), flist (names, levels in lme4's order, assign), as lFormula makes them."""
    structure = random_effects(pd.read_csv(DATA / "bars.csv"), parse_formula(text))
    case = CASES[text]
    assert structure.gp == case["Gp"]
    assert [block.names for block in structure.blocks] == case["cnms"]
    assert [structure.factors[block.factor].name for block in structure.blocks] == case["cnms_groups"]
    assert [factor.name for factor in structure.factors] == case["flist"]
    assert structure.assign == case["assign"]
    assert [[str(level) for level in factor.levels] for factor in structure.factors] == case["levels"]


def test_interaction_codes_pair_each_row_with_its_combination():
    data = pd.read_csv(DATA / "bars.csv")
    factor = random_effects(data, parse_formula("y ~ (1 | school:class)")).factors[0]
    labels = [factor.levels[code] for code in factor.codes]
    assert labels == [f"{school}:{cls}" for school, cls in zip(data["school"], data["class"])]


def test_the_fixed_part_keeps_everything_outside_the_random_terms():
    parsed = parse_formula("y ~ (1 | class) + x + (1 | school:sex) + z + (1 | school)")
    assert parsed.fixed == "x + z" and parsed.groups == ["class", "school:sex", "school"]


def test_one_plain_term_keeps_the_single_factor_view():
    parsed = parse_formula("y ~ x + (1 + x | g)")
    assert parsed.single and (parsed.group, parsed.random_terms, parsed.random_intercept) == ("g", ("x",), True)


@pytest.mark.parametrize("text", ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (1 | a/b)", "y ~ (1 + x || g)",
                                  "y ~ (1 + log(x) | g)"])
def test_the_single_factor_view_refuses_other_structures_by_name(text):
    parsed = parse_formula(text)
    with pytest.raises(FormulaError, match="this step handles one grouping column"):
        parsed.group


@pytest.mark.parametrize("text, message", [
    ("y ~ x + (1 | a/(b/c))", "cannot read the nesting"),
    ("y ~ x + (1 | (a/b):c)", "cannot read the nesting"),
    ("y ~ x + (1 | a + b)", "cannot read the grouping factor"),
    ("y ~ x + (1 | a:)", "cannot read the grouping factor"),
    ("y ~ x + ( | g)", "no terms before"),
    ("y ~ x + (1 | g | h)", "more than one '\\|'"),
    ("y ~ x + (1 + x + x | g)", "repeated"),
    ("y ~ x + (0 | g)", "has no terms"),
])
def test_bad_random_terms_are_one_line_errors(text, message):
    with pytest.raises(FormulaError, match=message) as error:
        parse_formula(text)
    assert str(error.value).startswith("model.formula") and "\n" not in str(error.value)
