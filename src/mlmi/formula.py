"""Parse lme4 model formulas into the pieces mlmi's fit needs, and check them.

Supported: ``y ~ fixed terms + (re_terms | group)`` with exactly one random-effects term
and one grouping factor, the shape MixedLM fits well. Anything else (crossed or nested
grouping, ``||``, several random terms) is rejected with a message, never fitted wrongly.
Column names that are not plain names (spaces, other signs) are quoted in backticks, as
in R and formulaic: ``score ~ `ses score` + (1 + `ses score` | school.id)``.

The fixed part becomes a design matrix with lme4's term names (``fixed_design``): text
columns, and integer codes wrapped in ``C()`` or ``factor()``, are factors with treatment
contrasts whose reference is the first level in sorted order, as R's ``factor`` has it.

A formula is user text, never code (design §10). formulaic evaluates function calls as
Python, so before it sees the fixed part ``parse_formula`` reads that part into a Python
syntax tree (``ast.parse`` parses, never runs) and allows only what lme4 users write:
column names, numbers, the operators ``+ - * / : ^ **``, parentheses, and the functions
of ``USAGE`` with their arguments by position. Anything else (attribute access,
subscripts, strings, ``{}`` blocks, lambdas, keyword arguments, any other call,
Python's ``__dunder__`` names) is a one-line FormulaError naming the piece. Inside a
function's parentheses ``^`` is R's power (``I(x^2)`` is the square), outside it is the
formula's crossing (``(a + b)^2``), as in R.
"""
import ast
import keyword
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic import model_matrix
from formulaic.transforms.contrasts import C, TreatmentContrasts
from formulaic.utils.sentinels import UNSET

#: A plain column name; ``\x00<i>\x00`` stands for the i-th backtick-quoted name while parsing.
_NAME = re.compile(r"^(?:[A-Za-z_.][A-Za-z0-9_.]*|\x00\d+\x00)$")
_TOKEN = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*|\x00\d+\x00")
_PLAIN = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_QUOTED = re.compile(r"`([^`]*)`")
_MASKED = re.compile(r"\x00(\d+)\x00")
_RANDOM = re.compile(r"\(([^()]*?)(\|\|?)([^()]*)\)")
_CBIND = re.compile(r"^cbind\s*\(([^,()]*),([^,()]*)\)$")
_CODED = re.compile(r"\b(?:C|factor)\(\s*([A-Za-z_.][A-Za-z0-9_.]*|\x00\d+\x00)")
#: A formulaic column of a factor: ``sex[T.girl]`` (treatment) or ``sex[girl]`` (full dummy coding).
_LEVEL = re.compile(r"^(.*)\[(?:T\.)?(.*)\]$")
#: The functions a formula may call, as R users write them, each with the form it takes.
USAGE = {"I": "I(x^2)", "log": "log(x)", "log10": "log10(x)", "log2": "log2(x)", "log1p": "log1p(x)",
         "exp": "exp(x)", "sqrt": "sqrt(x)", "abs": "abs(x)", "scale": "scale(x)", "center": "center(x)",
         "factor": "factor(x)", "C": "C(x) or C(x, contr.sum)", "poly": "poly(x, 2)"}
#: Those of one number each, which may also sit inside another's argument: ``I(log(x)^2)``.
NUMERIC = ("I", "log", "log10", "log2", "log1p", "exp", "sqrt", "abs", "scale", "center")
#: R's contrasts, the second argument ``C()`` may take (formulaic has them under the same names).
CONTRASTS = ("contr.treatment", "contr.sum", "contr.helmert", "contr.poly")
#: What to write instead of a piece a formula may not hold.
ALLOWED = ("a formula holds column names (in backticks if not plain), numbers, + - * / : ^ ** and parentheses, "
           f"and the functions {', '.join(USAGE)}")
#: R's ``factor(x)`` means what formulaic's ``C(x)`` does; numpy gives the functions formulaic lacks.
_CONTEXT = {"factor": C, "sqrt": np.sqrt, "log1p": np.log1p, "abs": np.abs}
#: The pieces of a formula's text: whitespace, numbers, names (``_NAME``'s) and operators; nothing else.
_LEXEME = re.compile(r"(?P<space>\s+)|(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)"
                     r"|(?P<name>[A-Za-z_.][A-Za-z0-9_.]*|\x00\d+\x00)|(?P<operator>\*\*|[-+*/:^(),=|~])")
#: Python's ``__dunder__`` names (``x.__class__``, ``__import__``): never a column's name unquoted.
_DUNDER = re.compile(r"__[A-Za-z]\w*__")
#: Python's operators of a formula's terms, and of the arithmetic inside a function's parentheses.
_TERM_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.MatMult, ast.BitXor, ast.Pow)
_ARITHMETIC_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)


class FormulaError(ValueError):
    """A model formula mlmi cannot parse or fit."""


class ForbiddenPiece(FormulaError):
    """A piece of a formula the allow-list refuses (design §10): said before anything else about the formula."""


@dataclass(frozen=True)
class MixedFormula:
    """One linear mixed model: response, fixed-effects right-hand side, random part.

    ``response``, ``random_terms`` and ``group`` are column names as in the data (quotes
    removed); ``fixed`` is formulaic text (quotes kept), checked against the allow-list, with
    R's ``^`` inside a function written as Python's ``**``.
    """

    text: str
    response: str
    fixed: str
    random_terms: tuple[str, ...]
    random_intercept: bool
    group: str
    #: ``cbind(successes, failures)``'s failures as signed columns: ``((1, "size"), (-1, "incidence"))`` for
    #: ``cbind(incidence, size - incidence)``; empty for a one-column response (then ``response`` is it).
    failures: tuple[tuple[int, str], ...] = ()

    @property
    def re_names(self) -> list[str]:
        """Random-effect term names as lme4 prints them: ``(Intercept)`` first, quoted names in backticks."""
        return (["(Intercept)"] if self.random_intercept else []) + [lme4_name(t) for t in self.random_terms]

    @property
    def coded_factors(self) -> list[str]:
        """Columns the fixed part wraps in ``C()`` or ``factor()``: categories whatever their type."""
        masked, quoted = _mask(self.fixed)
        return [_unmask(name, quoted, keep_quotes=False) for name in _CODED.findall(masked)]

    def variables(self, columns) -> list[str]:
        """Data columns the model uses, in the order they appear in ``columns``."""
        masked, quoted = _mask(self.text)
        used = {_unmask(token, quoted, keep_quotes=False) for token in _TOKEN.findall(masked)}
        return [c for c in columns if c in used]


def lme4_name(column: str) -> str:
    """A column as lme4 names its term: plain names as they are, others in backticks (`ses score`)."""
    return column if _PLAIN.match(column) else f"`{column}`"


def _mask(text: str) -> tuple[str, list[str]]:
    """``text`` with each backtick-quoted name replaced by a placeholder, and the names in order."""
    quoted = []

    def hold(match):
        quoted.append(match.group(1))
        return f"\x00{len(quoted) - 1}\x00"

    masked = _QUOTED.sub(hold, text.replace("\x00", ""))
    if "`" in masked:
        raise FormulaError(f"model.formula {text!r}: a '`' is not closed; quote a column name as `ses score`")
    if "" in quoted:
        raise FormulaError(f"model.formula {text!r}: empty `` quotes; put the column name between them")
    return masked, quoted


def _unmask(text: str, quoted: list[str], keep_quotes: bool = True) -> str:
    """Put the quoted names back into ``text``: in backticks (formulaic text) or bare (a column name)."""
    return _MASKED.sub(lambda m: f"`{quoted[int(m.group(1))]}`" if keep_quotes else quoted[int(m.group(1))], text)


@dataclass(frozen=True)
class _Lexeme:
    """One piece of a formula's (masked) text: its kind (``_LEXEME``'s groups), text and place, and
    whether it lies inside a function's parentheses, where formulaic reads Python."""

    kind: str
    text: str
    start: int
    in_call: bool

    @property
    def formulaic(self) -> str:
        """As formulaic gets it: inside a function, ``^`` as Python's power and a dotted name in backticks
        (Python would read its dots as attribute access; R's contrasts are formulaic's own dotted names)."""
        if self.in_call and self.text == "^":
            return "**"
        if self.in_call and _PLAIN.match(self.text) and not self.text.isidentifier() and self.text not in CONTRASTS:
            return f"`{self.text}`"
        return self.text


def _lexemes(text: str, masked: str) -> list[_Lexeme]:
    """``masked`` (a part of formula ``text``) cut into lexemes; a character of no lexeme, or a Python
    dunder name, is a FormulaError."""
    lexemes, calls, position = [], [], 0
    while position < len(masked):
        match = _LEXEME.match(masked, position)
        if match is None:
            raise _refusal(text, masked[position])
        kind, piece = match.lastgroup, match.group()
        if kind == "name" and _DUNDER.search(piece):
            raise _refusal(text, piece, "Python's double-underscore names are refused; quote a column of that name "
                           "in backticks", what="the name ")
        if piece == "(":
            written = [lexeme for lexeme in lexemes if lexeme.kind != "space"]
            calls.append(bool(written) and written[-1].kind == "name")
        elif piece == ")" and calls:
            calls.pop()
        lexemes.append(_Lexeme(kind, piece, position, any(calls)))
        position = match.end()
    return lexemes


def _refusal(text: str, piece: str, advice: str = ALLOWED, what: str = "") -> FormulaError:
    """The one-line error for a piece of formula ``text`` mlmi does not allow."""
    return ForbiddenPiece(f"model.formula {text!r}: {what}{piece!r} is not allowed; {advice}")


def _checked_fixed(text: str, fixed: str, quoted: list[str]) -> str:
    """The fixed part (masked) of formula ``text``, checked against the allow-list, as formulaic text."""
    lexemes = _lexemes(text, fixed)
    python, spans, end = [], [], 0
    for i, lexeme in enumerate(lexemes):        # names as _<i>_, ':' as '@': Python parses what formulaic will run
        apart = " " if lexeme.kind == "name" and i and lexemes[i - 1].kind == "name" else ""  # not one name
        python.append(" " if lexeme.kind == "space" else f"{apart}_{i}_" if lexeme.kind == "name"
                      else "@" if lexeme.text == ":" else lexeme.formulaic)
        spans.append((end, end + len(python[-1])))
        end = spans[-1][1]
    try:
        tree = ast.parse("".join(python), mode="eval")
    except SyntaxError:
        raise FormulaError(f"model.formula {text!r}: cannot read the fixed part {_unmask(fixed, quoted)!r}; "
                           f"{ALLOWED}") from None
    _Allowed(text, fixed, quoted, lexemes, spans).term(tree.body)
    return _unmask("".join(lexeme.formulaic for lexeme in lexemes), quoted)


@dataclass(frozen=True)
class _Allowed:
    """The allow-list, walked over the syntax tree of a formula's fixed part; the first piece it does
    not allow is a FormulaError that shows the piece as written."""

    text: str
    fixed: str
    quoted: list
    lexemes: list
    spans: list

    def term(self, node: ast.AST) -> None:
        """A term of the formula: a name, a number, an allowed call, or terms joined by the formula's operators."""
        self.walk(node, _TERM_OPERATORS, USAGE, lambda leaf: isinstance(leaf, ast.Name))

    def arithmetic(self, node: ast.AST) -> None:
        """What formulaic computes with Python: columns, numbers, + - * / ^ and the functions of one number."""
        self.walk(node, _ARITHMETIC_OPERATORS, NUMERIC, self.column)

    def walk(self, node: ast.AST, operators: tuple, functions, leaf) -> None:
        """``node``, allowed when it is a number, a ``leaf`` (a predicate), a call of one of ``functions``, a
        sign before an allowed node, or allowed nodes joined by one of ``operators``."""
        if isinstance(node, ast.BinOp) and isinstance(node.op, operators):
            self.walk(node.left, operators, functions, leaf)
            self.walk(node.right, operators, functions, leaf)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            self.walk(node.operand, operators, functions, leaf)
        elif isinstance(node, ast.Call):
            self.call(node, functions)
        elif not (self.number(node) or leaf(node)):
            raise self.refusal(node)

    def call(self, node: ast.Call, allowed) -> None:
        """A call of an ``allowed`` function, its arguments by position in the form ``USAGE`` shows."""
        function = self.name(node.func)
        if function not in allowed:
            advice = f"inside a function only {', '.join(NUMERIC)} may be called" if function in USAGE else ALLOWED
            raise self.refusal(node.func, advice, what="the function ")
        args = node.args
        counts = {"C": (1, 2), "poly": (1, 2)}.get(function, (1,))
        if node.keywords or len(args) not in counts:
            raise self.refusal(node, f"write it as {USAGE[function]}")
        if function in ("C", "factor"):
            coded = self.column(args[0]) and (len(args) == 1 or self.name(args[1]) in CONTRASTS)
        else:
            self.arithmetic(args[0])
            coded = function != "poly" or len(args) == 1 or self.degree(args[1])
        if not coded:
            raise self.refusal(node, f"write it as {USAGE[function]}")

    def column(self, node: ast.AST) -> bool:
        """Whether ``node`` is a column's name Python can read inside a function (a keyword such as
        ``lambda`` it cannot: refused)."""
        if not isinstance(node, ast.Name):
            return False
        if keyword.iskeyword(self.name(node) or ""):
            raise self.refusal(node, "Python reads it as a keyword inside a function; rename the column",
                               what="the name ")
        return True

    def name(self, node: ast.AST) -> str | None:
        """The unquoted name ``node`` stands for; None for a quoted name or anything else."""
        if not isinstance(node, ast.Name):
            return None
        text = self.lexemes[int(node.id.strip("_"))].text
        return text if _PLAIN.match(text) else None

    @staticmethod
    def number(node: ast.AST) -> bool:
        """Whether ``node`` is a number written as one."""
        return isinstance(node, ast.Constant) and type(node.value) in (int, float)

    @staticmethod
    def degree(node: ast.AST) -> bool:
        """Whether ``node`` is a polynomial's degree: a whole number from 1."""
        return isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 1

    def refusal(self, node: ast.AST, advice: str = ALLOWED, what: str = "") -> FormulaError:
        """The error for ``node``, shown as the user wrote it."""
        inside = [lexeme for lexeme, (start, end) in zip(self.lexemes, self.spans)
                  if lexeme.kind != "space" and start < node.end_col_offset and end > node.col_offset]
        written = self.fixed[inside[0].start:inside[-1].start + len(inside[-1].text)]
        return _refusal(self.text, _unmask(written, self.quoted), advice, what)


def parse_formula(text: str) -> MixedFormula:
    """Split an lme4 formula into response, fixed part and one ``(terms | group)`` part.

    The fixed part is checked against the allow-list (module docstring) before anything reads it
    as Python, and returned as formulaic text.

    Raises
    ------
    FormulaError
        With a message naming the unsupported or forbidden piece and what to write instead.
    """
    masked, quoted = _mask(text)
    if masked.count("~") != 1:
        raise FormulaError(f"model.formula {text!r}: needs exactly one '~', e.g. 'y ~ x + (1 | g)'")
    if masked.count("(") != masked.count(")"):
        raise FormulaError(f"model.formula {text!r}: unbalanced parentheses ({masked.count('(')} '(' and "
                           f"{masked.count(')')} ')'); close every '('")
    _lexemes(text, masked)  # no character or name mlmi does not allow, anywhere
    lhs, rhs = (part.strip() for part in masked.split("~"))
    lhs, failures = _parse_response(text, lhs, quoted)
    randoms = list(_RANDOM.finditer(rhs))
    if not randoms and "|" in rhs:
        raise FormulaError(
            f"model.formula {text!r}: cannot read the random part; write it as '(1 + x | group)' "
            "with plain column names (functions of columns are not supported there)")
    if not randoms:
        raise FormulaError(f"model.formula {text!r}: no random-effects term; add one such as '(1 | group)'")
    if len(randoms) > 1:
        raise FormulaError(
            f"model.formula {text!r}: {len(randoms)} random-effects terms; mlmi fits one "
            "grouping factor, so combine them as '(1 + x | group)'")
    _check_separated(text, rhs, randoms[0], quoted)
    terms, bars, group = randoms[0].groups()
    if bars == "||":
        raise FormulaError(f"model.formula {text!r}: '||' (uncorrelated random effects) is not supported; use '|'")
    group = group.strip()
    if not _NAME.match(group):
        raise FormulaError(
            f"model.formula {text!r}: grouping factor {_unmask(group, quoted)!r} must be one column name "
            "(nested 'a/b' or interaction 'a:b' grouping is not supported)")
    intercept, slopes = _parse_random_terms(text, terms, quoted)
    fixed = _RANDOM.sub("", rhs).strip()
    fixed = re.sub(r"^\s*\+|\+\s*$", "", re.sub(r"\+\s*\+", "+", fixed)).strip() or "1"
    if "|" in fixed:
        raise FormulaError(f"model.formula {text!r}: stray '|' outside a '(terms | group)' term")
    return MixedFormula(text, _unmask(lhs, quoted, False), _checked_fixed(text, fixed, quoted),
                        tuple(_unmask(s, quoted, False) for s in slopes), intercept, _unmask(group, quoted, False),
                        failures)


def _parse_response(text: str, lhs: str, quoted: list[str]) -> tuple[str, tuple[tuple[int, str], ...]]:
    """The response: one column name, or R's binomial ``cbind(successes, failures)`` whose failures are a
    column or a sum and difference of columns (``cbind(incidence, size - incidence)``), read as signed
    column names, never evaluated. Returns the (masked) successes column and the failures' signed names."""
    binomial = _CBIND.match(lhs)
    if binomial is None:
        if not _NAME.match(lhs):
            raise FormulaError(f"model.formula {text!r}: the response {_unmask(lhs, quoted)!r} must be one column "
                               "name, or cbind(successes, failures) for a binomial model")
        return lhs, ()
    successes, failures = binomial.group(1).strip(), binomial.group(2).strip()
    pieces = re.findall(r"([+-]?)\s*([^+\s-][^+-]*?)\s*(?=[+-]|$)", failures)
    if not _NAME.match(successes) or not pieces or "".join(sign + name for sign, name in pieces) != \
            re.sub(r"\s+", "", failures) or not all(_NAME.match(name) for _, name in pieces):
        raise FormulaError(f"model.formula {text!r}: write a binomial response as cbind(successes, failures) with "
                           "column names, the failures a column or columns added and subtracted "
                           "(cbind(y, n - y))")
    return successes, tuple((-1 if sign == "-" else 1, _unmask(name, quoted, False)) for sign, name in pieces)


def _check_separated(text: str, rhs: str, random: re.Match, quoted: list[str]) -> None:
    """The random part must be a term of its own: '+' (or nothing) on each side, as in 'y ~ a + (1 | g)'."""
    before, after = rhs[:random.start()].rstrip(), rhs[random.end():].lstrip()
    if (before and not before.endswith("+")) or (after and not after.startswith("+")):
        raise FormulaError(f"model.formula {text!r}: the random part {_unmask(random.group(0), quoted)!r} is not "
                           "joined to the other terms by '+'; write e.g. 'y ~ a + (1 | g)'")


def _parse_random_terms(text: str, terms: str, quoted: list[str]) -> tuple[bool, tuple[str, ...]]:
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
                f"model.formula {text!r}: random-effects term {_unmask(token, quoted)!r} is not "
                "supported; random slopes must be plain column names")
    if not intercept and not slopes:
        raise FormulaError(f"model.formula {text!r}: the random part has no terms")
    if len(set(slopes)) != len(slopes):
        raise FormulaError(f"model.formula {text!r}: a random slope is repeated")
    return intercept, tuple(slopes)


@dataclass(frozen=True)
class FixedDesign:
    """The fixed-effects design matrix with lme4's term names, and the factors it codes."""

    names: list[str]
    X: np.ndarray
    factors: dict


def fixed_design(fixed: str, data: pd.DataFrame) -> FixedDesign:
    """Build the fixed part on ``data``: numbers as they are, text and ``C()``/``factor()`` as factors.

    Factors get treatment contrasts against their first level in sorted order (R's default),
    and terms are named as lme4 names them: ``sexgirl``, ``factor(code)2``, ```ses score```.
    ``factors`` maps each factor to its ``levels`` and ``reference`` level (None for other contrasts).
    formulaic runs the calls in ``fixed`` as Python: give it ``parse_formula``'s ``fixed``, never user text.
    Errors of formulaic (an unknown column, a missing operator) come as one-line ValueErrors.
    """
    try:
        matrix = model_matrix(fixed, _numbers_as_numbers(data), context=_CONTEXT)
    except Exception as error:  # formulaic's errors are many classes, some several lines long
        raise ValueError(str(error).strip().splitlines()[0]) from None
    columns = set(data.columns)
    contrasts = {str(factor): state for factor, state in matrix.model_spec.factor_contrasts.items()}
    factors = {lme4_term(factor, columns): {"levels": [_label(v) for v in state.levels], "reference": _reference(state)}
               for factor, state in contrasts.items()}
    labels = {factor: {str(v): _label(v) for v in state.levels} for factor, state in contrasts.items()}
    names = [":".join(_piece(part, columns, labels) for part in name.split(":")) for name in matrix.columns]
    return FixedDesign(names, np.asarray(matrix, dtype=float), factors)


def _numbers_as_numbers(data: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as numpy floats (formulaic does not take nullable integers); text as it is."""
    return data.astype({c: float for c in data.columns if pd.api.types.is_numeric_dtype(data[c])})


def lme4_term(factor: str, columns: set = frozenset()) -> str:
    """A factor or column as lme4 names it: data columns (of ``columns``) by ``lme4_name``, expressions as R writes them
    (formulaic's ``I(`school.id` ** 2)`` is ``I(school.id^2)``)."""
    if factor in columns:
        return lme4_name(factor)
    return _QUOTED.sub(lambda quoted: lme4_name(quoted.group(1)), factor).replace(" ** ", "^")


def _piece(part: str, columns: set, labels: dict) -> str:
    """One factor of a formulaic column name as lme4 names it: ``sex[T.girl]`` is ``sexgirl``."""
    if part == "Intercept":
        return "(Intercept)"
    level = _LEVEL.match(part)
    if level is None or level.group(1) not in labels:
        return lme4_term(part, columns)
    factor, label = level.groups()
    return lme4_term(factor, columns) + labels[factor].get(label, label)


def _label(level) -> str:
    """A level as R prints it: whole numbers without '.0' (as.character(2) is "2"), text as it is."""
    if isinstance(level, (bool, np.bool_)):
        return str(level)
    if isinstance(level, (int, float, np.integer, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _reference(state) -> str | None:
    """The level a treatment contrast leaves out (its base, or the first level); None for other contrasts."""
    contrasts = state.contrasts
    if not isinstance(contrasts, TreatmentContrasts):
        return None
    return _label(state.levels[0] if contrasts.base is UNSET else contrasts.base)
