"""Error messages that never repeat what the client sent (a value sent in the wrong place may be an identifier).

graphql-core's validation and coercion messages print the offending value ("Variable '$x' got invalid value
'510922-2547567'", "String cannot represent a non string value: ...", "Expected value of type 'X', found ...",
"Unknown operation named '...'"), and it has no switch to leave the value out, as `hide_suggestions` leaves out
suggestions. `redacted()` replaces, in each message that is not ours (ours carry an `extensions.code` and are
written without client input), every quoted or bare piece that is a value the client sent (a string or number of
the query text, a value or key of the variables, the operation name) with <input>. Matching what was sent,
rather than rewriting each message format, covers every format graphql-core prints values in (repr, JSON,
GraphQL literals, truncated reprs) and keeps the rest of the message: names, types and locations.
"""
from __future__ import annotations

import json
import re
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from graphql.language import Lexer, Source, TokenKind

PLACEHOLDER = "<input>"
# a quoted piece (either quote, with escapes) or a bare one (up to white space or punctuation)
_PIECE = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"{}\[\](),:;]+""")
_LITERALS = (TokenKind.STRING, TokenKind.BLOCK_STRING, TokenKind.INT, TokenKind.FLOAT)


def redacted(errors: list[GraphQLError], query: str, variables: Any, operation_name: Any) -> list[GraphQLError]:
    """`errors`, those without an extensions.code with every piece of client input in their message replaced."""
    if all((e.extensions or {}).get("code") for e in errors):
        return errors
    sent = _sent(query, variables, operation_name)
    out = []
    for e in errors:
        if (e.extensions or {}).get("code"):
            out.append(e)
            continue
        message = _PIECE.sub(lambda m: _piece(m.group(), sent), e.message)
        out.append(e if message == e.message else GraphQLError(
            message, nodes=e.nodes, source=e.source, positions=e.positions, path=e.path,
            original_error=e.original_error, extensions=e.extensions))
    return out


def _piece(piece: str, sent: set[str]) -> str:
    if len(piece) >= 2 and piece[0] == piece[-1] and piece[0] in "'\"":
        text = piece[1:-1]
        # "..." inside quotes: graphql-core's inspect() shortened a long value to its head and tail; a quoted
        # piece holding what was sent inside it: a scalar's message quoting the repr of a whole object sent
        return PLACEHOLDER if text in sent or "..." in text or any(len(s) >= 3 and s in text for s in sent) \
            else piece
    text = piece.rstrip(".")  # a bare value at the end of a sentence
    return PLACEHOLDER + piece[len(text):] if text and text in sent else piece


def _sent(query: str, variables: Any, operation_name: Any) -> set[str]:
    """Every form in which graphql-core may print a value the client sent."""
    sent: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return  # true, false, null: not client data
        if isinstance(value, str):
            sent.update((value, repr(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
                         json.dumps(value)[1:-1]))
        elif isinstance(value, (int, float)):
            sent.update((str(value), repr(value)))

    add(operation_name)
    lexer = Lexer(Source(query))
    try:
        token = lexer.advance()
        while token.kind is not TokenKind.EOF:
            if token.kind in _LITERALS:
                add(token.value)
                add(query[token.start:token.end].strip('"'))  # as written, escapes included
            token = lexer.advance()
    except GraphQLSyntaxError:
        pass  # the lexer's own messages quote one character at most; the parser's quote tokens lexed before
    stack = [variables]
    while stack:  # iterative: variables may nest deeper than the interpreter's recursion limit
        value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                add(k)
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
        else:
            add(value)
    sent.discard("")
    return sent
