"""SQL text as SQLite's tokenizer sees it: statements of a script, leading keywords.

Splitting a script must never depend on a schema: a script's own first statements may
create or drop what its later ones use, so compiling ahead against the replica's schema
can misjudge where a statement ends (that once sent "CREATE TABLE t (a); INSERT ..." to
the origin as one string, and the INSERT never ran). Statement ends are found by tokens:
a ``;`` outside literals, identifiers and comments ends a statement when
``sqlite3_complete`` agrees, which keeps a trigger's ``BEGIN ... END`` body whole.
"""

from __future__ import annotations

import re

import apsw


# A literal or quoted name, its quote doubled inside: a run of anything but the quote,
# then doubled quotes each followed by such a run, never given back (possessive). Spelled
# as "(one char or a doubled quote)*", Python's matcher kept a frame per character: 184 MB
# of them for a 1.5 MB literal.
def quoted_tokens(end: str = "") -> str:
    """The pattern of a literal or quoted name; ``end="?"`` also takes an unterminated one."""
    runs = (f"{q}[^{q}]*(?:{q}{q}[^{q}]*)*+{q}{end}" for q in ("'", '"', "`"))
    return "|".join(runs) + rf"|\[[^\]]*\]{end}"


_QUOTED = quoted_tokens()
# Tokens that may hold a ';' that ends nothing, and the ';' itself. An unterminated
# literal or comment matches none of the quoted forms, so its ';' are tested, and
# sqlite3_complete refuses them.
_TOKENS = re.compile(
    rf"""{_QUOTED}|--[^\n]*|/\*.*?\*/|;""",
    re.DOTALL,
)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")


def split_script(sql: str) -> list[str]:
    """The statements of ``sql``, each without its final ``;``; empty ones dropped."""
    statements: list[str] = []
    start = 0
    for token in _TOKENS.finditer(sql):
        if token.group() != ";":
            continue
        end = token.end()
        if apsw.complete(sql[start:end]):
            _keep(statements, sql[start : end - 1])
            start = end
    _keep(statements, sql[start:])
    return statements


def _keep(statements: list[str], piece: str) -> None:
    if strip_comments(piece).strip(" \t\r\n\f;"):
        statements.append(piece.strip())


def strip_comments(sql: str) -> str:
    """``sql`` with comments replaced by spaces (literals are not looked into)."""
    return _COMMENT.sub(" ", sql)


def leading_words(sql: str, count: int) -> list[str]:
    """The first ``count`` bare words of ``sql``, upper-cased, comments skipped."""
    return [word.upper() for word in _WORD.findall(strip_comments(sql)[:512])[:count]]


# Parameters as SQLite's tokenizer sees them; literals, quoted names, comments and bare
# words are matched too, only to be skipped (a "?" or ":x" inside them is no parameter).
_PARAMETER = re.compile(
    rf"""{_QUOTED}|--[^\n]*|/\*.*?(?:\*/|$)"""
    r"""|[A-Za-z_][A-Za-z_0-9$]*|\?(?P<number>\d*)|[:@$](?P<name>[A-Za-z_0-9$]+)""",
    re.DOTALL,
)


def numbered_parameters(sql: str) -> tuple[str | None, ...]:
    """The parameters of one statement by index, numbered as SQLite numbers them.

    Named ones by name without their prefix, ``?NNN`` as ``NNN``, a bare ``?`` as None
    (what SQLite's ``sqlite3_bind_parameter_name`` shows, less the prefix). For statements
    that cannot be compiled here (a table the replica has not seen yet): an origin that
    drops named arguments (``tursodb``) then still gets every value in its place.
    """
    names: list[str | None] = []
    for match in _PARAMETER.finditer(sql):
        number, name = match.group("number"), match.group("name")
        if number == "":
            names.append(None)
        elif number is not None:
            index = int(number)
            names.extend([None] * (index - len(names)))
            names[index - 1] = number
        elif name is not None and name not in names:
            names.append(name)
    return tuple(names)
