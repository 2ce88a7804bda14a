"""The SOQL the sandbox understands: enough to look records up by their keys and to poll changes.

    SELECT f1, f2 FROM Obj
        [WHERE cond [AND cond ...]]      cond: f = v | f != v | f < v | f <= v | f > v | f >= v | f IN (v, ...)
        [ORDER BY f [ASC|DESC] [, ...]]
        [LIMIT n]

Values are 'strings', numbers, true/false/null and datetime literals, unquoted as in SOQL
(2026-11-30T10:00:00Z, 2026-11-30T10:00:00.000+0000, 2026-11-30T10:00:00+01:00).
Anything else is MALFORMED_QUERY, as Salesforce answers a query it cannot parse.
"""

from dataclasses import dataclass
from datetime import datetime
import re
from typing import Any

TOKEN = re.compile(r"""\s*(?:(?P<string>'(?:[^'\\]|\\.)*')
                       |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2}))
                       |(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)
                       |(?P<op>!=|<=|>=|<|>|=|\(|\)|,))""", re.VERBOSE)
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
KEYWORDS = ("SELECT", "FROM", "WHERE", "AND", "IN", "LIMIT", "ORDER", "BY", "ASC", "DESC")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class SoqlError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # "=", "!=", "<", "<=", ">", ">=", "IN"
    values: tuple[Any, ...]  # datetime literals as aware datetimes


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    conditions: tuple[Condition, ...]
    limit: int | None
    order: tuple[tuple[str, bool], ...] = ()  # (field, descending)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def soql_parse(text: str) -> Query:
    tokens = _tokens(text)
    parser = _Parser(tokens)
    return parser.query()


def _tokens(text: str) -> list[Token]:
    tokens, position, text = [], 0, text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise SoqlError(f"unexpected token: '{text[position:position + 20]}'")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def query(self) -> Query:
        self._keyword("SELECT")
        fields = [self._name()]
        while self._peek_op(","):
            self.at += 1
            fields.append(self._name())
        self._keyword("FROM")
        sobject = self._name()
        conditions = self._where() if self._peek_keyword("WHERE") else []
        order = self._order() if self._peek_keyword("ORDER") else []
        limit = self._limit() if self._peek_keyword("LIMIT") else None
        if self.at < len(self.tokens):
            raise SoqlError(f"unexpected token: '{self.tokens[self.at].text}'")
        return Query(tuple(fields), sobject, tuple(conditions), limit, tuple(order))

    def _order(self) -> list[tuple[str, bool]]:
        self.at += 1
        self._keyword("BY")
        order = [self._order_item()]
        while self._peek_op(","):
            self.at += 1
            order.append(self._order_item())
        return order

    def _order_item(self) -> tuple[str, bool]:
        name = self._name()
        for word in ("ASC", "DESC"):
            if self._peek_keyword(word):
                self.at += 1
                return name, word == "DESC"
        return name, False

    def _where(self) -> list[Condition]:
        self.at += 1
        conditions = [self._condition()]
        while self._peek_keyword("AND"):
            self.at += 1
            conditions.append(self._condition())
        return conditions

    def _condition(self) -> Condition:
        field = self._name()
        if self._peek_keyword("IN"):
            self.at += 1
            self._op("(")
            values = [self._literal()]
            while self._peek_op(","):
                self.at += 1
                values.append(self._literal())
            self._op(")")
            return Condition(field, "IN", tuple(values))
        operator = self._next()
        if operator.kind != "op" or operator.text not in COMPARISONS:
            raise SoqlError(f"unexpected token: '{operator.text}'")
        return Condition(field, operator.text, (self._literal(),))

    def _limit(self) -> int:
        self.at += 1
        token = self._next()
        if token.kind != "number" or not token.text.isdecimal():
            raise SoqlError(f"unexpected token: '{token.text}'")
        return int(token.text)

    def _literal(self) -> Any:
        token = self._next()
        if token.kind == "string":
            return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), token.text[1:-1])
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "datetime":
            return soql_datetime(token.text)
        if token.kind == "name" and token.text.lower() in ("null", "true", "false"):
            return {"null": None, "true": True, "false": False}[token.text.lower()]
        raise SoqlError(f"unexpected token: '{token.text}'")

    def _name(self) -> str:
        token = self._next()
        if token.kind != "name" or token.text.upper() in KEYWORDS:
            raise SoqlError(f"unexpected token: '{token.text}'")
        return token.text

    def _keyword(self, word: str) -> None:
        token = self._next()
        if token.kind != "name" or token.text.upper() != word:
            raise SoqlError(f"unexpected token: '{token.text}', expected {word}")

    def _op(self, op: str) -> None:
        token = self._next()
        if token.kind != "op" or token.text != op:
            raise SoqlError(f"unexpected token: '{token.text}', expected '{op}'")

    def _peek_keyword(self, word: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at].kind == "name" \
            and self.tokens[self.at].text.upper() == word

    def _peek_op(self, op: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at].kind == "op" and self.tokens[self.at].text == op

    def _next(self) -> Token:
        if self.at >= len(self.tokens):
            raise SoqlError("unexpected end of query")
        self.at += 1
        return self.tokens[self.at - 1]


def soql_datetime(text: str) -> datetime:
    """A SOQL or Salesforce datetime (Z, +0000 or +00:00 offsets) as an aware datetime."""
    text = text.strip().replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SoqlError(f"invalid datetime: '{text}'") from None
    if moment.tzinfo is None:
        raise SoqlError(f"a datetime needs a time zone: '{text}'")
    return moment
