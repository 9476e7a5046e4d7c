"""Emulation only: read a DynamoDB request's expressions into the attributes they name.

The sandbox's IAM emulation (:mod:`securepipe.sandbox.emulation`) needs the DynamoDB
fine-grained access control condition keys of a request (``dynamodb:Attributes`` above all),
which moto does not compute. This module reads them from the request's expressions with a real
tokenizer and a recursive-descent parser of the grammars AWS documents, not with pattern
guesses:

* condition expressions (``ConditionExpression``, ``FilterExpression``,
  ``KeyConditionExpression``):
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.OperatorsAndFunctions.html
* update expressions (``SET``, ``REMOVE``, ``ADD``, ``DELETE``, each clause at most once):
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html
* projection expressions and document paths (``a.b[0].#c``):
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.Attributes.html

Every path resolves to its **top-level** attribute (a nested path ``erasure_head.#n`` names
``erasure_head``), after expression attribute names (``#placeholders``) are substituted: a
placeholder's value is one attribute name, literally (``{"#x": "a.b"}`` names the attribute
``a.b``, never the path). It fails closed: any text the grammar does not produce, a placeholder
the request does not define, or one it defines and never uses (AWS refuses both with a
ValidationException) raises :class:`UnreadableExpression`, and the caller refuses the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ExpressionReader", "UnreadableExpression", "tokenize"]


class UnreadableExpression(ValueError):
    """An expression the emulation cannot read unambiguously (the request is refused)."""


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is ``name``, ``placeholder`` (``#x``), ``value`` (``:x``),
    ``number`` (a list index) or the punctuation itself (``=``, ``<>``, ``(``, ...)."""

    kind: str
    text: str
    pos: int


_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_PUNCT2 = ("<>", "<=", ">=")
_PUNCT1 = frozenset("=<>(),.[]+-")
_SPACE = frozenset(" \t\r\n")


def tokenize(text: str) -> list[Token]:
    """The tokens of an expression; :class:`UnreadableExpression` on any other character.

    Names are ``[A-Za-z_][A-Za-z0-9_]*`` (anything else must go through a placeholder),
    placeholders ``#`` and values ``:`` followed by ``[A-Za-z0-9_]+``; numbers appear only as
    list indexes.
    """
    if not isinstance(text, str):
        raise UnreadableExpression("an expression that is not a string")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
        elif c in ("#", ":"):
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            if j == i + 1:
                raise UnreadableExpression(f"an empty {c}-token at {i}")
            tokens.append(Token("placeholder" if c == "#" else "value", text[i:j], i))
            i = j
        elif c in _NAME_START:
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            tokens.append(Token("name", text[i:j], i))
            i = j
        elif c in _DIGITS:
            j = i + 1
            while j < n and text[j] in _DIGITS:
                j += 1
            if j < n and text[j] in _NAME_START:
                raise UnreadableExpression(f"a name starting with a digit at {i}")
            tokens.append(Token("number", text[i:j], i))
            i = j
        elif text.startswith(_PUNCT2, i):
            tokens.append(Token(text[i:i + 2], text[i:i + 2], i))
            i += 2
        elif c in _PUNCT1:
            tokens.append(Token(c, c, i))
            i += 1
        else:
            raise UnreadableExpression(f"character {c!r} at {i}")
    return tokens


#: Keywords of the grammars (case-insensitive); a bare name that is one of them is not a path.
_KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"})
_COMPARATORS = frozenset({"=", "<>", "<", "<=", ">", ">="})
#: Condition functions with a path first argument (case-sensitive, as AWS reads them).
_CONDITION_FUNCTIONS = {"attribute_exists": 1, "attribute_not_exists": 1,
                        "attribute_type": 2, "begins_with": 2, "contains": 2}


@dataclass
class _Parser:
    """Recursive descent over one expression's tokens; collects the placeholders and top-level
    attribute names of every path it reads."""

    tokens: list[Token]
    names: Mapping[str, str]
    attributes: set[str] = field(default_factory=set)
    placeholders: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    #: (top-level name, value placeholder) of every ``path = :value`` at the top of an AND
    #: chain (what a key condition's partition key equality looks like)
    equalities: list[tuple[str, str]] = field(default_factory=list)
    nested: bool = False
    i: int = 0

    # -- tokens ------------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def fail(self, what: str) -> UnreadableExpression:
        tok = self.peek()
        where = f"at {tok.pos} ({tok.text!r})" if tok is not None else "at the end"
        return UnreadableExpression(f"{what} {where}")

    def take(self, kind: str) -> Token:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            raise self.fail(f"expected {kind!r}")
        self.i += 1
        return tok

    def at(self, kind: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == kind

    def at_keyword(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "name" and tok.text.upper() == word

    def done(self) -> None:
        if self.peek() is not None:
            raise self.fail("unexpected text")

    # -- paths and operands ----------------------------------------------------------------
    def path(self) -> str:
        """``element ('.' element | '[' number ']')*``; returns the top-level name (and sets
        :attr:`nested` when the path goes below it)."""
        top = self.element()
        self.nested = False
        while True:
            if self.at(".") or self.at("["):
                self.nested = True
            if self.at("."):
                self.i += 1
                self.element()
            elif self.at("["):
                self.i += 1
                self.take("number")
                self.take("]")
            else:
                return top

    def element(self) -> str:
        tok = self.peek()
        if tok is None:
            raise self.fail("expected an attribute name")
        if tok.kind == "placeholder":
            self.i += 1
            self.placeholders.add(tok.text)
            if tok.text not in self.names:
                raise UnreadableExpression(
                    f"placeholder {tok.text} is not defined in ExpressionAttributeNames")
            return self.names[tok.text]
        if tok.kind == "name" and tok.text.upper() not in _KEYWORDS:
            self.i += 1
            return tok.text
        raise self.fail("expected an attribute name")

    def top_path(self) -> str:
        name = self.path()
        self.attributes.add(name)
        return name

    def value(self) -> str:
        tok = self.take("value")
        self.values.add(tok.text)
        return tok.text

    def operand(self) -> tuple[str, str | None]:
        """A comparison operand: ``:value``, ``size(path)`` or a path. Returns its kind and
        (for a path) its top-level name."""
        if self.at("value"):
            return "value", self.value()
        tok = self.peek()
        if tok is not None and tok.kind == "name" and tok.text == "size" and self.peek(1) \
                is not None and self.peek(1).kind == "(":  # type: ignore[union-attr]
            self.i += 2
            self.top_path()
            self.take(")")
            return "size", None
        name = self.top_path()
        return ("nested" if self.nested else "path"), name

    # -- condition expressions ---------------------------------------------------------------
    def condition(self) -> None:
        self.disjunction()

    def top_condition(self) -> None:
        """A whole condition; records ``path = :value`` equalities of a plain AND chain."""
        self.conjunction(top=True)
        if self.at_keyword("OR"):
            self.equalities.clear()     # not a plain AND chain: no equality holds for sure
            while self.at_keyword("OR"):
                self.i += 1
                self.conjunction(top=False)

    def disjunction(self) -> None:
        self.conjunction(top=False)
        while self.at_keyword("OR"):
            self.i += 1
            self.conjunction(top=False)

    def conjunction(self, top: bool) -> None:
        self.negation(top)
        while self.at_keyword("AND"):
            self.i += 1
            self.negation(top)

    def negation(self, top: bool) -> None:
        if self.at_keyword("NOT"):
            self.i += 1
            self.negation(False)
            return
        self.primary(top)

    def primary(self, top: bool) -> None:
        if self.at("("):
            self.i += 1
            self.condition()
            self.take(")")
            return
        tok = self.peek()
        nxt = self.peek(1)
        if (tok is not None and tok.kind == "name" and tok.text in _CONDITION_FUNCTIONS
                and nxt is not None and nxt.kind == "("):
            self.i += 2
            self.top_path()
            for _ in range(_CONDITION_FUNCTIONS[tok.text] - 1):
                self.take(",")
                self.operand()
            self.take(")")
            return
        kind, name = self.operand()
        if self.at_keyword("BETWEEN"):
            self.i += 1
            self.operand()
            if not self.at_keyword("AND"):
                raise self.fail("expected AND in BETWEEN")
            self.i += 1
            self.operand()
        elif self.at_keyword("IN"):
            self.i += 1
            self.take("(")
            self.operand()
            while self.at(","):
                self.i += 1
                self.operand()
            self.take(")")
        else:
            tok = self.peek()
            if tok is None or tok.kind not in _COMPARATORS:
                raise self.fail("expected a comparator")
            self.i += 1
            other_kind, other = self.operand()
            if top and tok.kind == "=":
                if kind == "path" and other_kind == "value":
                    self.equalities.append((str(name), str(other)))
                elif kind == "value" and other_kind == "path":
                    self.equalities.append((str(other), str(name)))

    # -- update expressions ------------------------------------------------------------------
    def update(self) -> None:
        seen: set[str] = set()
        if self.peek() is None:
            raise self.fail("an empty update expression")
        while self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            clause = tok.text.upper() if tok.kind == "name" else ""
            if clause not in ("SET", "REMOVE", "ADD", "DELETE"):
                raise self.fail("expected SET, REMOVE, ADD or DELETE")
            if clause in seen:
                raise self.fail(f"{clause} given twice")
            seen.add(clause)
            self.i += 1
            while True:
                if clause == "SET":
                    self.top_path()
                    self.take("=")
                    self.set_value()
                elif clause == "REMOVE":
                    self.top_path()
                else:               # ADD path :value, DELETE path :subset
                    self.top_path()
                    self.value()
                if not self.at(","):
                    break
                self.i += 1

    def set_value(self) -> None:
        self.set_operand()
        if self.at("+") or self.at("-"):
            self.i += 1
            self.set_operand()

    def set_operand(self) -> None:
        tok = self.peek()
        nxt = self.peek(1)
        if tok is not None and tok.kind == "name" and nxt is not None and nxt.kind == "(":
            if tok.text == "if_not_exists":
                self.i += 2
                self.top_path()
                self.take(",")
                self.set_operand()
                self.take(")")
                return
            if tok.text == "list_append":
                self.i += 2
                self.set_operand()
                self.take(",")
                self.set_operand()
                self.take(")")
                return
            raise self.fail("unknown function")
        if self.at("value"):
            self.value()
        else:
            self.top_path()

    # -- projection expressions --------------------------------------------------------------
    def projection(self) -> None:
        self.top_path()
        while self.at(","):
            self.i += 1
            self.top_path()


@dataclass
class ExpressionReader:
    """Reads every expression of one request against its ``ExpressionAttributeNames``.

    Call :meth:`condition`, :meth:`update`, :meth:`projection` for each expression the request
    carries, then :meth:`finish` (refuses names defined but never used). :attr:`attributes`
    collects the top-level attribute names of every path read.
    """

    names: Mapping[str, str]
    attributes: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not isinstance(self.names, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in self.names.items()):
            raise UnreadableExpression("ExpressionAttributeNames is not a map of names")

    def _run(self, text: object, what: str, kind: str) -> _Parser:
        if not isinstance(text, str) or not text.strip():
            raise UnreadableExpression(f"{what} is not a non-empty string")
        parser = _Parser(tokenize(text), self.names)
        try:
            getattr(parser, kind)()
            parser.done()
        except UnreadableExpression as exc:
            raise UnreadableExpression(f"{what}: {exc}") from None
        self.attributes |= parser.attributes
        self.used |= parser.placeholders
        return parser

    def condition(self, text: object, what: str = "ConditionExpression") -> list[tuple[str, str]]:
        """Read a condition (or filter, or key condition) expression; returns its top-level
        ``name = :value`` equalities when it is a plain AND chain (a key condition's partition
        key equality is one), else none."""
        return self._run(text, what, "top_condition").equalities

    def update(self, text: object) -> None:
        """Read an update expression."""
        self._run(text, "UpdateExpression", "update")

    def projection(self, text: object) -> None:
        """Read a projection expression."""
        self._run(text, "ProjectionExpression", "projection")

    def finish(self) -> None:
        """Refuse placeholders defined in ExpressionAttributeNames that no expression uses."""
        unused = sorted(set(self.names) - self.used)
        if unused:
            raise UnreadableExpression(
                f"ExpressionAttributeNames defines {', '.join(unused)}, unused in expressions")
