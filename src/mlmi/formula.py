"""Parse lme4 model formulas into the pieces statsmodels' MixedLM needs.

Supported: ``y ~ fixed terms + (re_terms | group)`` with exactly one random-effects term
and one grouping factor, the shape MixedLM fits well. Anything else (crossed or nested
grouping, ``||``, several random terms) is rejected with a message, never fitted wrongly.
"""
import re
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_RANDOM = re.compile(r"\(([^()]*?)(\|\|?)([^()]*)\)")


class FormulaError(ValueError):
    """A model formula mlmi cannot parse or statsmodels cannot fit."""


@dataclass(frozen=True)
class MixedFormula:
    """One linear mixed model: response, fixed-effects right-hand side, random part."""

    text: str
    response: str
    fixed: str
    random_terms: tuple[str, ...]
    random_intercept: bool
    group: str

    @property
    def re_names(self) -> list[str]:
        """Random-effect term names as lme4 prints them: ``(Intercept)`` first."""
        return (["(Intercept)"] if self.random_intercept else []) + list(self.random_terms)

    def variables(self, columns) -> list[str]:
        """Data columns the model uses, in the order they appear in ``columns``."""
        used = set(re.findall(r"[A-Za-z_.][A-Za-z0-9_.]*", self.text))
        return [c for c in columns if c in used]


def parse_formula(text: str) -> MixedFormula:
    """Split an lme4 formula into response, fixed part and one ``(terms | group)`` part.

    Raises
    ------
    FormulaError
        With a message naming the unsupported piece and what to write instead.
    """
    if text.count("~") != 1:
        raise FormulaError(f"model.formula {text!r}: needs exactly one '~', e.g. 'y ~ x + (1 | g)'")
    if text.count("(") != text.count(")"):
        raise FormulaError(f"model.formula {text!r}: unbalanced parentheses ({text.count('(')} '(' and "
                           f"{text.count(')')} ')'); close every '('")
    lhs, rhs = (part.strip() for part in text.split("~"))
    if not _NAME.match(lhs):
        raise FormulaError(f"model.formula {text!r}: the response {lhs!r} must be one column name")
    randoms = _RANDOM.findall(rhs)
    if not randoms and "|" in rhs:
        raise FormulaError(
            f"model.formula {text!r}: cannot read the random part; write it as '(1 + x | group)' "
            "with plain column names (functions of columns are not supported there)")
    if not randoms:
        raise FormulaError(f"model.formula {text!r}: no random-effects term; add one such as '(1 | group)'")
    if len(randoms) > 1:
        raise FormulaError(
            f"model.formula {text!r}: {len(randoms)} random-effects terms; statsmodels MixedLM fits one "
            "grouping factor, so combine them as '(1 + x | group)'")
    terms, bars, group = randoms[0]
    if bars == "||":
        raise FormulaError(f"model.formula {text!r}: '||' (uncorrelated random effects) is not supported; use '|'")
    group = group.strip()
    if not _NAME.match(group):
        raise FormulaError(
            f"model.formula {text!r}: grouping factor {group!r} must be one column name "
            "(nested 'a/b' or interaction 'a:b' grouping is not supported)")
    intercept, slopes = _parse_random_terms(text, terms)
    fixed = _RANDOM.sub("", rhs).strip()
    fixed = re.sub(r"^\s*\+|\+\s*$", "", re.sub(r"\+\s*\+", "+", fixed)).strip() or "1"
    if "|" in fixed:
        raise FormulaError(f"model.formula {text!r}: stray '|' outside a '(terms | group)' term")
    return MixedFormula(text, lhs, fixed, slopes, intercept, group)


def _parse_random_terms(text: str, terms: str) -> tuple[bool, tuple[str, ...]]:
    """Read ``1 + x``, ``x`` or ``0 + x`` as (has intercept, slope names)."""
    intercept, slopes = True, []
    for raw in re.split(r"\s*\+\s*", terms.strip()):
        token = raw.strip()
        if token == "1":
            intercept = True
        elif token in ("0", "-1"):
            intercept = False
        elif _NAME.match(token):
            slopes.append(token)
        else:
            raise FormulaError(
                f"model.formula {text!r}: random-effects term {token!r} is not supported; "
                "random slopes must be plain column names")
    if not intercept and not slopes:
        raise FormulaError(f"model.formula {text!r}: the random part has no terms")
    if len(set(slopes)) != len(slopes):
        raise FormulaError(f"model.formula {text!r}: a random slope is repeated")
    return intercept, tuple(slopes)
