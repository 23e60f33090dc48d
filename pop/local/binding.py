"""Hrana arguments -> one positional parameter list, as SQLite numbers parameters.

SQLite gives every parameter an index, named ones included, so binding by index works on
every engine, even those that ignore or mishandle names (``tursodb``'s Hrana endpoint
drops ``named_args``).
"""

from __future__ import annotations

import re

from pop.hrana.errors import HranaError
from pop.hrana.messages import Stmt
from pop.hrana.values import SqlValue
from pop.sql.inspector import StatementInfo

_PREFIXES = (":", "@", "$")


def args_refusal(stmt: Stmt) -> HranaError | None:
    """sqld's refusal of the arguments' form, checked before the statement is compiled."""
    if stmt.args and stmt.named_args:
        return HranaError(
            "Specifying both positional and named arguments is not supported",
            "ARGS_BOTH_POSITIONAL_AND_NAMED",
        )
    return None


def positional_args(stmt: Stmt, info: StatementInfo) -> list[SqlValue]:
    """The value for each of the statement's parameters, in index order (as sqld binds)."""
    refusal = args_refusal(stmt)
    if refusal is not None:
        raise refusal
    if not stmt.named_args:
        if len(stmt.args) > info.param_count:
            raise _args_invalid(
                f"too many parameters, expected {info.param_count} found {len(stmt.args)}"
            )
        if len(stmt.args) < info.param_count:
            raise _args_invalid(f"value for parameter {len(stmt.args) + 1} not found")
        return list(stmt.args)
    named = {_bare(arg.name): arg.value for arg in stmt.named_args}
    values: list[SqlValue] = []
    for index, name in enumerate(info.param_names):
        if name is None or name.startswith("?") or _bare(name) not in named:
            raise _args_invalid(f"value for parameter {name or index + 1} not found")
        values.append(named[_bare(name)])
    return values


def _args_invalid(detail: str) -> HranaError:
    return HranaError(f"Arguments do not match SQL parameters: {detail}", "ARGS_INVALID")


def parameter_display_names(sql: str, info: StatementInfo) -> list[str | None]:
    """Parameter names with the prefix the SQL used (``:a``, ``@a``, ``$a``, ``?1``)."""
    names: list[str | None] = []
    for name in info.param_names:
        if name is None or name.startswith("?") or name[:1] in _PREFIXES:
            names.append(name)
            continue
        match = re.search(r"([:@$])" + re.escape(name) + r"\b", sql)
        names.append((match.group(1) if match else ":") + name)
    return names


def _bare(name: str) -> str:
    return name[1:] if name[:1] in _PREFIXES else name
