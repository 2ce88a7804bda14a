"""The SOQL the sandbox understands: enough to look records up by their keys.

    SELECT f1, f2 FROM Obj [WHERE f = 'v' | f != 'v' | f IN ('a', 'b') [AND ...]] [LIMIT n]

Anything else is MALFORMED_QUERY, as Salesforce answers a query it cannot parse.
"""

from dataclasses import dataclass
import re
from typing import Any

TOKEN = re.compile(r"""\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)
                       |(?P<op>!=|=|\(|\)|,))""", re.VERBOSE)
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class SoqlError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # "=", "!=", "IN"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    conditions: tuple[Condition, ...]
    limit: int | None


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
        limit = self._limit() if self._peek_keyword("LIMIT") else None
        if self.at < len(self.tokens):
            raise SoqlError(f"unexpected token: '{self.tokens[self.at].text}'")
        return Query(tuple(fields), sobject, tuple(conditions), limit)

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
        if operator.kind != "op" or operator.text not in ("=", "!="):
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
        if token.kind == "name" and token.text.lower() in ("null", "true", "false"):
            return {"null": None, "true": True, "false": False}[token.text.lower()]
        raise SoqlError(f"unexpected token: '{token.text}'")

    def _name(self) -> str:
        token = self._next()
        if token.kind != "name" or token.text.upper() in ("SELECT", "FROM", "WHERE", "AND", "IN", "LIMIT"):
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
