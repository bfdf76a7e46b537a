"""Parse lme4 model formulas into the pieces mlmi's fit needs, and check them.

Supported: lme4's random-effects structures, ``y ~ fixed terms + (terms | group) + ...``: several
random terms, crossed or nested grouping factors (``(1 | a) + (1 | b)``, ``(1 | a/b)``, ``a:b``),
uncorrelated terms (``||``), terms without intercept (``0 + x``) and random slopes of factors, expanded
as lme4's ``findbars`` expands them (``RandomTerm``). Anything else is rejected with a message.
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

#: A plain column name; ``\x00<i>\x00`` stands for the i-th backtick-quoted name while parsing.
_NAME = re.compile(r"^(?:[A-Za-z_.][A-Za-z0-9_.]*|\x00\d+\x00)$")
_TOKEN = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*|\x00\d+\x00")
_PLAIN = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_QUOTED = re.compile(r"`([^`]*)`")
_MASKED = re.compile(r"\x00(\d+)\x00")
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
class RandomTerm:
    """One ``(terms | group)`` term as lme4's ``findbars`` expands it: ``(1 + x || g)`` is ``(1 | g)`` and
    ``(0 + x | g)``, ``(1 | a/b)`` is ``(1 | b:a)`` and ``(1 | a)``.

    ``terms`` is the term's model matrix as formulaic text (``1 + x``, ``0 + x``), checked against the
    allow-list; ``intercept`` whether that matrix has an intercept and ``slopes`` its other terms (a column
    unquoted, an expression as formulaic writes it). ``factors`` are the grouping columns whose interaction
    (lme4's ``%i%``: the combinations that occur) is the grouping factor, and ``group`` that factor's
    name as lme4 writes it, such as ``class:school``.
    """

    terms: str
    intercept: bool
    slopes: tuple[str, ...]
    plain_slopes: bool
    factors: tuple[str, ...]
    group: str

    @property
    def plain(self) -> bool:
        """Whether the term is what the imputation layer knows: one grouping column, slopes plain columns."""
        return len(self.factors) == 1 and self.plain_slopes

    @property
    def lme4_text(self) -> str:
        """The term as lme4 names it (``1 + x | g``): the intercept spelled out, as the parsed term no longer
        knows how it was written."""
        slopes = [lme4_name(s) for s in self.slopes] if self.plain_slopes else list(self.slopes)
        group = lme4_name(self.group) if len(self.factors) == 1 else self.group
        return " + ".join(["1" if self.intercept else "0", *slopes]) + f" | {group}"


@dataclass(frozen=True)
class MixedFormula:
    """One mixed model: response, fixed-effects right-hand side, random terms (lme4's expansion).

    ``response`` is a column name as in the data (quotes removed), a binomial ``cbind``'s successes; ``fixed``
    is formulaic text (quotes kept), checked against the allow-list, with R's ``^`` inside a function written
    as Python's ``**``. ``bars``
    are the random terms in the order lme4's ``findbars`` gives them (the fit orders them as ``mkReTrms``).
    ``group``, ``random_terms``, ``random_intercept`` and ``re_names`` describe a model of one plain term,
    ``(1 + x | g)``, the shape the imputation layer models; for any other they raise FormulaError.
    """

    text: str
    response: str
    fixed: str
    bars: tuple[RandomTerm, ...]
    #: ``cbind(successes, failures)``'s failures as signed columns: ``((1, "size"), (-1, "incidence"))`` for
    #: ``cbind(incidence, size - incidence)``; empty for a one-column response (then ``response`` is it).
    failures: tuple[tuple[int, str], ...] = ()
    #: The grouping columns in the order the random part names them (``(1 | school/class)``: school, class),
    #: each once.
    grouping_columns: tuple[str, ...] = ()

    @property
    def single(self) -> bool:
        """Whether the model has one random term on one grouping column with plain slopes (``(1 + x | g)``)."""
        return len(self.bars) == 1 and self.bars[0].plain

    @property
    def groups(self) -> list[str]:
        """The grouping factors' names as lme4 writes them, each once, in the order of the terms."""
        return list(dict.fromkeys(bar.group for bar in self.bars))

    def single_term(self) -> RandomTerm:
        """The one plain random term, or a FormulaError saying that the step asking (the workflow's imputation
        and checks, the multilevel sampler) models only that shape; ``mlmi.fit.lmer.fit_mixed`` fits them all."""
        if not self.single:
            raise FormulaError(f"model.formula {self.text!r}: random terms "
                               f"{', '.join(f'({bar.lme4_text})' for bar in self.bars)}; this step handles one "
                               "grouping column with random intercept and slopes of plain columns, "
                               "such as '(1 + x | school)'")
        return self.bars[0]

    @property
    def group(self) -> str:
        """The grouping column of a one-term model."""
        return self.single_term().factors[0]

    @property
    def random_terms(self) -> tuple[str, ...]:
        """The random slopes (columns) of a one-term model."""
        return self.single_term().slopes

    @property
    def random_intercept(self) -> bool:
        """Whether a one-term model has a random intercept."""
        return self.single_term().intercept

    @property
    def re_names(self) -> list[str]:
        """Random-effect term names of a one-term model as lme4 prints them: ``(Intercept)`` first, quoted
        names in backticks."""
        return (["(Intercept)"] if self.random_intercept else []) + [lme4_name(t) for t in self.random_terms]

    @property
    def outer_group(self) -> str:
        """The grouping column the workflow's clusters follow (level 2, cluster means, bootstrap of clusters,
        amputation of whole clusters): the first one the random part names, the outermost of a nesting
        (``school`` in ``(1 | school/class)`` and in ``(1 | school) + (1 | class)``); a one-term model's ``group``."""
        return self.grouping_columns[0]

    @property
    def grouping_factors(self) -> list[tuple[str, ...]]:
        """Each grouping factor once, in lme4's order of the terms, as the columns whose combinations it is:
        ``(1 | school/class)`` gives ``[("class", "school"), ("school",)]``."""
        return list(dict.fromkeys(bar.factors for bar in self.bars))

    @property
    def slope_columns(self) -> list[str]:
        """The columns that are random slopes of plain names in any term, each once (the values that must be
        numbers); a slope that is an expression (``log(x)``, ``x:z``) is not among them."""
        return list(dict.fromkeys(slope for bar in self.bars if bar.plain_slopes for slope in bar.slopes))

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
    """Split an lme4 formula into response, fixed part and random terms, expanded as lme4's ``findbars`` does.

    Random terms are ``(terms | group)`` parts joined to the rest by ``+``: several of them, on crossed or
    nested factors (``a/b``, ``a:b``), uncorrelated (``||``), with any terms the allow-list takes
    (``0 + x``, a factor ``sex``). The fixed part and each term's model part are checked against the
    allow-list (module docstring) before anything reads them as Python, and returned as formulaic text.

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
    spans = _random_spans(text, rhs)
    if not spans and "|" in rhs:
        raise FormulaError(f"model.formula {text!r}: a '|' outside parentheses; write random terms in their own, "
                           "as in 'y ~ x + (1 + x | group)'")
    if not spans:
        raise FormulaError(f"model.formula {text!r}: no random-effects term; add one such as '(1 | group)'")
    for start, end in spans:
        _check_separated(text, rhs, start, end, quoted)
    bars = tuple(bar for start, end in spans for bar in _expanded(text, rhs[start + 1:end - 1], quoted))
    written = dict.fromkeys(column for start, end in spans for column in _written_groups(text, rhs[start + 1:end - 1],
                                                                                           quoted))
    fixed = "".join(rhs[a:b] for a, b in zip([0] + [end for _, end in spans], [start for start, _ in spans] + [None]))
    fixed = re.sub(r"^\s*\+|\+\s*$", "", re.sub(r"\+(\s*\+)+", "+", fixed).strip()).strip() or "1"
    if "|" in fixed:
        raise FormulaError(f"model.formula {text!r}: stray '|' outside a '(terms | group)' term")
    return MixedFormula(text, _unmask(lhs, quoted, False), _checked_fixed(text, fixed, quoted), bars, failures,
                        tuple(written))


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


def _random_spans(text: str, rhs: str) -> list[tuple[int, int]]:
    """(start, end) in ``rhs`` of each outermost parenthesised part with a '|' outside any inner parentheses."""
    spans, depth, opened = [], 0, 0
    for i, char in enumerate(rhs):
        if char == "(":
            opened = i if depth == 0 else opened
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"model.formula {text!r}: a ')' closes no '('")
            if depth == 0 and _top_level_bar(rhs[opened + 1:i]) is not None:
                spans.append((opened, i + 1))
    return spans


def _top_level_bar(inner: str) -> tuple[int, int] | None:
    """(start, end) of the first '|' or '||' of ``inner`` outside parentheses, or None."""
    depth = 0
    for i, char in enumerate(inner):
        depth += (char == "(") - (char == ")")
        if char == "|" and depth == 0:
            return i, i + 2 if inner[i + 1:i + 2] == "|" else i + 1
    return None


def _check_separated(text: str, rhs: str, start: int, end: int, quoted: list[str]) -> None:
    """A random part must be a term of its own: '+' (or nothing) on each side, as in 'y ~ a + (1 | g)'."""
    before, after = rhs[:start].rstrip(), rhs[end:].lstrip()
    if (before and not before.endswith("+")) or (after and not after.startswith("+")):
        raise FormulaError(f"model.formula {text!r}: the random part {_unmask(rhs[start:end], quoted)!r} is not "
                           "joined to the other terms by '+'; write e.g. 'y ~ a + (1 | g)'")


def _expanded(text: str, inner: str, quoted: list[str]) -> list[RandomTerm]:
    """The random terms one ``terms | group`` (or ``||``) part stands for, in lme4's order: ``||`` first split
    into an intercept term and one ``0 + term`` per term (``expandDoubleVerts``), then each grouping
    ``a/b`` into ``b:a`` and ``a`` (``expandSlash``)."""
    start, end = _top_level_bar(inner)
    terms, grouping = inner[:start].strip(), inner[end:].strip()
    if "|" in grouping or "|" in terms:
        raise FormulaError(f"model.formula {text!r}: more than one '|' in {_unmask(inner, quoted)!r}; "
                           "write one '(terms | group)' part per grouping factor")
    if not terms:
        raise FormulaError(f"model.formula {text!r}: the random part {_unmask(inner, quoted)!r} has no terms "
                           "before '|'; write e.g. '(1 | g)'")
    _checked_fixed(text, terms, quoted)                                   # the allow-list, as for the fixed part
    _check_repeats(text, terms, quoted)
    intercept, slopes, labels, plain = _plain_terms(terms, quoted) or _formulaic_terms(text, inner, terms, quoted)
    if not intercept and not labels:
        raise FormulaError(f"model.formula {text!r}: the random part {_unmask(inner, quoted)!r} has no terms")
    pieces = [(intercept, slopes, ("1" if intercept else "0") + "".join(f" + {label}" for label in labels))]
    if inner[start:end] == "||":
        pieces = ([(True, (), "1")] if intercept else []) + [
            (False, (slope,), f"0 + {label}") for slope, label in zip(slopes, labels)]
    groupings = _slash_expanded(text, _grouping_tree(text, grouping, quoted), quoted)
    return [RandomTerm(formulaic, has_intercept, these, plain, _leaves(tree, quoted), _group_name(tree, quoted))
            for has_intercept, these, formulaic in pieces for tree in groupings]


def _written_groups(text: str, inner: str, quoted: list[str]) -> tuple[str, ...]:
    """The grouping columns of one ``terms | group`` part (checked by ``_expanded``) in the order written."""
    _, end = _top_level_bar(inner)
    return _leaves(_grouping_tree(text, inner[end:].strip(), quoted), quoted)


def _plain_terms(terms: str, quoted: list[str]) -> tuple | None:
    """A random part (or a fixed part: ``_plain_design``) of column names, ``1``, ``0`` and ``-1`` joined by '+'
    (``1 + x``, ``0 + x``, ``x``), read without formulaic: (intercept, slopes, slopes as formulaic text, True); None
    for anything else."""
    intercept, slopes = True, []
    for token in (piece.strip() for piece in terms.split("+")):
        if token in ("1", "0", "-1"):
            intercept = token == "1"
        elif _NAME.match(token):
            slopes.append(_unmask(token, quoted, keep_quotes=False))
        else:
            return None
    return intercept, tuple(slopes), [s if s.isidentifier() else f"`{s}`" for s in slopes], True


def _formulaic_terms(text: str, inner: str, terms: str, quoted: list[str]) -> tuple:
    """Any other random part (``x:z``, ``log(x)``, ``x * z``) as formulaic parses it: (intercept, slopes as
    formulaic writes them, the same as formulaic text, whether each slope is one column); formulaic's
    objections as a one-line FormulaError."""
    from formulaic import Formula  # here: parsing a plain formula (most jobs) does not pay formulaic's ~0.4 s import

    try:
        parsed = Formula(_checked_fixed(text, terms, quoted))
    except Exception as error:  # formulaic's errors are many classes, some several lines long
        raise FormulaError(f"model.formula {text!r}: cannot read the random part {_unmask(inner, quoted)!r}: "
                           f"{str(error).strip().splitlines()[0]}") from None
    others = [term for term in parsed if str(term) != "1"]
    plain = all(len(term.factors) == 1 and term.factors[0].eval_method.value == "lookup" for term in others)
    labels = [_term_text(term) for term in others]
    return len(others) < len(list(parsed)), tuple(str(t) if plain else label for t, label in zip(others, labels)), \
        labels, plain


def _check_repeats(text: str, terms: str, quoted: list[str]) -> None:
    """A term written twice in one random part (``1 + x + x``) is a slip: said, not silently merged."""
    written = [piece.strip() for piece in re.split(r"\s*\+\s*", terms) if piece.strip()]
    if len(set(written)) != len(written):
        raise FormulaError(f"model.formula {text!r}: a random slope is repeated in {_unmask(terms, quoted)!r}")


def _term_text(term) -> str:
    """A formulaic term as formulaic text again: columns of names that need it in backticks."""
    return ":".join(f"`{factor}`" if factor.eval_method.value == "lookup" and not str(factor).isidentifier()
                    else str(factor) for factor in term.factors)


def _grouping_tree(text: str, grouping: str, quoted: list[str]):
    """A grouping expression (masked) as a tree: a name, or (operator, left, right) for ':' and '/', both
    left-associative and ':' binding tighter, as in R."""
    tokens = [t for t in re.findall(r"\x00\d+\x00|[A-Za-z_.][A-Za-z0-9_.]*|[:/()]|\S", grouping)]
    position = 0

    def fail():
        return FormulaError(f"model.formula {text!r}: cannot read the grouping factor {_unmask(grouping, quoted)!r}; "
                            "write a column name, 'a:b' (their combinations) or 'a/b' (b within a)")

    def expression(operators):
        nonlocal position
        tree = atom() if operators == ":" else expression(":")
        while position < len(tokens) and tokens[position] == operators:
            position += 1
            tree = (operators, tree, atom() if operators == ":" else expression(":"))
        return tree

    def atom():
        nonlocal position
        if position >= len(tokens):
            raise fail()
        token = tokens[position]
        position += 1
        if token == "(":
            tree = expression("/")
            if position >= len(tokens) or tokens[position] != ")":
                raise fail()
            position += 1
            return tree
        if not _NAME.match(token):
            raise fail()
        return token

    tree = expression("/")
    if position != len(tokens):
        raise fail()
    return tree


def _slash_expanded(text: str, tree, quoted: list[str]) -> list:
    """lme4's ``expandSlash``: ``a/b`` is ``b:a`` then ``a``; ``a/b/c`` is ``c:(b:a)``, ``b:a``, ``a``."""
    if not _has_slash(tree):
        return [tree]
    if tree[0] != "/" or _has_slash(tree[2]):
        raise FormulaError(f"model.formula {text!r}: cannot read the nesting {_deparse(tree, quoted)!r}; write "
                           "'a/b' or 'a/b/c' (each factor within the one before)")
    outer = _slash_expanded(text, tree[1], quoted)
    return [(":", tree[2], outer[0]), *outer]


def _has_slash(tree) -> bool:
    """Whether a grouping tree holds a '/'."""
    return isinstance(tree, tuple) and (tree[0] == "/" or _has_slash(tree[1]) or _has_slash(tree[2]))


def _leaves(tree, quoted: list[str]) -> tuple[str, ...]:
    """The columns of a grouping tree, left to right, as column names."""
    if isinstance(tree, str):
        return (_unmask(tree, quoted, keep_quotes=False),)
    return _leaves(tree[1], quoted) + _leaves(tree[2], quoted)


def _group_name(tree, quoted: list[str]) -> str:
    """A grouping factor's name: a column's name as it is, an interaction as lme4 writes it (``class:school``)."""
    return _unmask(tree, quoted, keep_quotes=False) if isinstance(tree, str) else _deparse(tree, quoted)


def _deparse(tree, quoted: list[str]) -> str:
    """A grouping tree as R deparses it: ``a:b:c`` left-nested, ``c:(b:a)`` right-nested, names as lme4's."""
    if isinstance(tree, str):
        return lme4_name(_unmask(tree, quoted, keep_quotes=False))
    right = _deparse(tree[2], quoted)
    return f"{_deparse(tree[1], quoted)}{tree[0]}{f'({right})' if isinstance(tree[2], tuple) else right}"


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
    An intercept alone (``1``: a null model's fixed part) is its column of ones, without formulaic's machinery.
    """
    if fixed == "1":
        return FixedDesign(["(Intercept)"], np.ones((len(data), 1)), {})
    plain = _plain_design(fixed, data)
    if plain is not None:
        return plain
    from formulaic import model_matrix
    from formulaic.transforms.contrasts import C

    context = {"factor": C, "sqrt": np.sqrt, "log1p": np.log1p, "abs": np.abs}  # R's factor(x) is formulaic's C(x)
    try:
        matrix = model_matrix(fixed, _numbers_as_numbers(data), context=context)
    except Exception as error:  # formulaic's errors are many classes, some several lines long
        raise ValueError(str(error).strip().splitlines()[0]) from None
    columns = set(data.columns)
    contrasts = {str(factor): state for factor, state in matrix.model_spec.factor_contrasts.items()}
    factors = {lme4_term(factor, columns): {"levels": [level_label(v) for v in state.levels],
                                            "reference": _reference(state)}
               for factor, state in contrasts.items()}
    labels = {factor: {str(v): level_label(v) for v in state.levels} for factor, state in contrasts.items()}
    names = [":".join(_piece(part, columns, labels) for part in name.split(":")) for name in matrix.columns]
    return FixedDesign(names, np.asarray(matrix, dtype=float), factors)


def _plain_design(fixed: str, data: pd.DataFrame) -> FixedDesign | None:
    """``fixed_design`` of a fixed part of plain numeric columns (column names, ``1``, ``0`` and ``-1`` joined by
    '+', read as a random part's are: ``_plain_terms``), without formulaic: the matrix formulaic builds (an
    intercept column first unless the last of ``1``, ``0``, ``-1`` removes it, then each column once, as floats, in
    the order written; Fortran order, as formulaic's matrix converts), the same names. None for anything else (a
    factor, an expression, a missing value, an absent column, a name Python reads as a constant), which formulaic
    builds: the fit job of the usual model then never imports it (~0.3 s, more than the fit)."""
    plain = _plain_terms(*_mask(fixed))
    if plain is None:
        return None
    intercept, slopes = plain[:2]
    columns = list(dict.fromkeys(slopes))
    if not columns or not all(_plain_numbers(data, column) and not keyword.iskeyword(column) for column in columns):
        return None
    X = np.empty((len(data), intercept + len(columns)), order="F")
    if intercept:
        X[:, 0] = 1.0
    for j, column in enumerate(columns, start=int(intercept)):
        X[:, j] = data[column].to_numpy(dtype=float)
    names = ["(Intercept)"] * intercept + [lme4_term(column, set(data.columns)) for column in columns]
    return FixedDesign(names, X, {})


def _plain_numbers(data: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` is one of ``data``'s, of integers or floats (not true/false, which formulaic codes as a
    factor), with no missing value."""
    types = pd.api.types
    return column in data.columns and (types.is_integer_dtype(data[column]) or types.is_float_dtype(data[column])) \
        and not data[column].isna().any()


def _numbers_as_numbers(data: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as numpy floats (formulaic does not take nullable integers; missing values NaN); text as it
    is. Built column by column: pandas' ``astype`` takes milliseconds over a nullable integer column."""
    return pd.DataFrame({c: data[c].to_numpy(dtype=float, na_value=np.nan) if pd.api.types.is_numeric_dtype(data[c])
                         else data[c] for c in data.columns}, index=data.index)


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


def level_label(level) -> str:
    """A level as R prints it: whole numbers without '.0' (as.character(2) is "2"), text as it is."""
    if isinstance(level, (bool, np.bool_)):
        return str(level)
    if isinstance(level, (int, float, np.integer, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _reference(state) -> str | None:
    """The level a treatment contrast leaves out (its base, or the first level); None for other contrasts."""
    from formulaic.transforms.contrasts import TreatmentContrasts
    from formulaic.utils.sentinels import UNSET

    contrasts = state.contrasts
    if not isinstance(contrasts, TreatmentContrasts):
        return None
    return level_label(state.levels[0] if contrasts.base is UNSET else contrasts.base)
