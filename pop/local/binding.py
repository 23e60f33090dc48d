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


def positional_args(stmt: Stmt, info: StatementInfo) -> list[SqlValue]:
    """The value for each of the statement's parameters, in index order."""
    if not stmt.named_args:
        if len(stmt.args) > info.param_count and info.param_count >= 0:
            raise HranaError(
                f"{len(stmt.args)} arguments given but the statement has "
                f"{info.param_count} parameters",
                "ARGS_INVALID",
            )
        if len(stmt.args) < info.param_count:
            raise HranaError(
                f"the statement has {info.param_count} parameters but only "
                f"{len(stmt.args)} arguments were given",
                "ARGS_INVALID",
            )
        return list(stmt.args)
    named = {_bare(arg.name): arg.value for arg in stmt.named_args}
    values: list[SqlValue] = []
    for index, name in enumerate(info.param_names):
        if name is not None and not name.startswith("?") and _bare(name) in named:
            values.append(named[_bare(name)])
        elif index < len(stmt.args):
            values.append(stmt.args[index])
        else:
            label = name if name is not None else f"?{index + 1}"
            raise HranaError(f"no value given for parameter {label}", "ARGS_INVALID")
    return values


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
