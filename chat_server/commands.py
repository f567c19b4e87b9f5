"""The client verbs of ``chat-server``: call, sql, logs, subscribe, describe, publish, delete.

Each is a thin layer over the async client: connect to the ``cli`` endpoint
(no lifecycle hooks; calls carry the CLI's identity and no connection), send
one request, print the reference's output format. Errors are one readable
line on stderr and a non-zero exit status, never a traceback. Whatever the
server sends is printed through ``visible`` (or as ASCII-only JSON), so no
text a client or module wrote reaches the terminal raw.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db_core.logs import LEVELS
from db_core.protocol import ErrorMessage
from db_core.schema import INT_MAX, INT_MIN, col_type_from_description, col_type_from_json
from db_core.sql import format_table, json_value
from db_core.visible import visible

from .address import DB_NAME_RULE, argument_type, check_database_name, parse_server
from .client import Client, QueryDelta
from .errors import ClientError
from .tokens import remember_cli, token_for


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers returns


def add_command(sub: Subcommands, func: Callable[[argparse.Namespace], object]) -> argparse.ArgumentParser:
    """The subcommand ``func`` implements (``cmd_NAME``), its help written once, in its docstring:
    the first line is the one-line help, the paragraphs after it the description, and the last
    paragraph, ``example: chat-server NAME ...``, the epilog. Add its arguments next."""
    name = func.__name__.removeprefix("cmd_")
    paragraphs = inspect.cleandoc(func.__doc__ or "").split("\n\n")
    example = paragraphs[-1]
    if len(paragraphs) < 3 or not example.startswith(f"example: chat-server {name}"):
        raise ValueError(f"the docstring of {func.__name__} needs a help line, a description and an example")
    description = "\n\n".join(" ".join(p.split()) for p in paragraphs[1:-1])
    return sub.add_parser(name, help=paragraphs[0], description=description, epilog=example,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_client_commands(sub: Subcommands, default_server: str) -> None:
    """The client verbs, each a subcommand of ``sub`` that talks to ``--server`` (``default_server``)."""
    def command(cmd: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> argparse.ArgumentParser:
        p = add_command(sub, cmd)
        p.add_argument("--server", default=default_server, metavar="URL", type=argument_type(parse_server),
                       help=f"the server: http(s)://, ws(s):// or host:port (default {default_server})")
        p.add_argument("database", type=argument_type(check_database_name),
                       help=f"the database: {DB_NAME_RULE.removeprefix('use ')}")
        p.set_defaults(func=lambda a: _run(cmd(a)))
        return p

    p = command(cmd_call)
    p.add_argument("reducer")
    p.add_argument("args", nargs="*", metavar="ARG", type=parse_arg)

    p = command(cmd_sql)
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON array")

    p = command(cmd_logs)
    p.add_argument("-n", "--num-lines", type=_count, metavar="N", help="only the last N lines")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--level", type=parse_level, metavar="LEVEL",
                   help=f"only this level and above: {', '.join(LEVELS)} (as the lines print them, in any case)")

    p = command(cmd_subscribe)
    p.add_argument("queries", nargs="+", metavar="QUERY")
    p.add_argument("-n", "--num-updates", type=_count, metavar="N", help="exit after N updates")
    p.add_argument("-t", "--timeout", type=_seconds, metavar="SECONDS", help="exit after this many seconds")
    p.add_argument("--print-initial-update", action="store_true", help="print the initial rows first")

    p = command(cmd_describe)
    p.add_argument("--json", action="store_true", help="print the schema as JSON")

    p = command(cmd_publish)
    p.add_argument("--module", required=True, type=Path, metavar="FILE", help="the module's .py file")
    p.add_argument("--clear-database", action="store_true", help="delete all data first (asks unless --yes)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = command(cmd_delete)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """Run a command to its exit status; a CliError or ClientError is one ``error:`` line on stderr."""
    try:
        return asyncio.run(coro)
    except (CliError, ClientError) as exc:
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _connect(args: argparse.Namespace) -> Client:
    token = token_for(args.server)
    client = await Client.connect(args.server, args.database, token=token, endpoint="cli")
    if token is None:
        remember_cli(args.server, client.token)
    return client


def parse_arg(text: str) -> Any:
    """A reducer argument (argparse type): JSON, or the text itself if it is not JSON. An integer
    the wire cannot carry (msgpack: 64 bits) is refused here rather than failing to encode."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if not _fits_the_wire(value):
        raise argparse.ArgumentTypeError(f"{text!r}: an integer in it does not fit in 64 bits")
    return value


def _fits_the_wire(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return INT_MIN <= value <= INT_MAX
    if isinstance(value, list):
        return all(_fits_the_wire(v) for v in value)
    if isinstance(value, dict):
        return all(_fits_the_wire(v) for v in value.values())
    return True


# Python's name for WARN, accepted too.
_LEVEL_ALIASES = {"WARNING": "WARN"}


def parse_level(text: str) -> str:
    """``--level L`` (argparse type): a level name as log lines print it (``WARN``), in any case; the name."""
    name = text.strip().upper()
    name = _LEVEL_ALIASES.get(name, name)
    if name not in LEVELS:
        raise argparse.ArgumentTypeError(f"unknown level {text!r}: use one of {', '.join(LEVELS)}")
    return name


def _count(text: str) -> int:
    """``-n N`` (argparse type): a whole number, 0 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {n}")
    if n > INT_MAX:
        raise argparse.ArgumentTypeError(f"{text} is too large")
    return n


def _seconds(text: str) -> float:
    """``-t SECONDS`` (argparse type): a finite number, 0 or more."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= seconds < math.inf:  # also refuses nan, which would wait forever
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, not {text!r}")
    return seconds


async def cmd_call(args: argparse.Namespace) -> int:
    """call a reducer

    Call a reducer. Each ARG is JSON, or a plain string if it is not valid JSON.
    Prints nothing on success.

    example: chat-server call quickstart-chat send_message 'Hello, World!'
    """
    client = await _connect(args)
    try:
        result = await client.call(args.reducer, *args.args)
    finally:
        await client.close()
    if result.status in ("committed", "no_changes"):
        return 0
    print(f"error: {visible(result.error or result.status)}", file=sys.stderr)
    return 1


async def cmd_sql(args: argparse.Namespace) -> int:
    """run a SQL query

    Run one SQL statement and print the result as a table.

    example: chat-server sql quickstart-chat "SELECT * FROM user WHERE online = true"
    """
    client = await _connect(args)
    try:
        result = await client.sql(args.query)
    finally:
        await client.close()
    if isinstance(result, ErrorMessage) or result.error is not None:
        raise CliError(result.error)
    if result.affected is not None and not result.columns:
        if not args.json:
            print(f"{result.affected} row{'s' if result.affected != 1 else ''} affected")
        else:
            print(json.dumps({"affected": result.affected}))
        return 0
    types = [col_type_from_json(t) for t in result.types]
    rows = [tuple(t.from_wire(v) for t, v in zip(types, row, strict=False)) for row in result.rows]  # as sent
    if args.json:
        print(json.dumps([{c: json_value(t, v) for c, t, v in zip(result.columns, types, row, strict=False)}
                          for row in rows]))
    else:
        print(format_table(result.columns, types, rows))
    return 0


async def cmd_logs(args: argparse.Namespace) -> int:
    """print a database's module log (owner only)

    Print the module log of a database.

    example: chat-server logs quickstart-chat -n 20 -f --level WARN
    """
    client = await _connect(args)
    try:
        if args.follow:
            async for lines in client.follow_logs(args.num_lines, args.level):
                _print_lines(lines)
        else:
            _print_lines(await client.logs(args.num_lines, args.level))
    finally:
        await client.close()
    return 0


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(visible(line))
    sys.stdout.flush()


async def cmd_subscribe(args: argparse.Namespace) -> int:
    """print updates to queries as JSON lines

    Subscribe to queries and print one JSON line per transaction.

    example: chat-server subscribe quickstart-chat "SELECT * FROM message" -n 3 -t 60
    """
    client = await _connect(args)
    try:
        await client.subscribe(args.queries)
        events = client.events()
        async for event in events:
            if event.initial:  # the subscription's first rows, queued before subscribe returned
                if args.print_initial_update:
                    _print_updates(client, event.updates)
                break
        if args.num_updates == 0:
            return 0

        async def consume() -> None:
            count = 0
            async for event in events:
                if event.offset < 0:  # rows sent again after a module update: no transaction
                    continue
                _print_updates(client, event.updates)
                count += 1
                if args.num_updates is not None and count >= args.num_updates:
                    return

        try:
            await asyncio.wait_for(consume(), args.timeout)
        except TimeoutError:
            pass
    finally:
        await client.close()
    return 0


def _print_updates(client: Client, updates: list[QueryDelta]) -> None:
    """One JSON line: each table's deleted and inserted rows, as each query received them."""
    out: dict[str, dict[str, list[Any]]] = {}
    for d in updates:
        ts = client.tables[d.table]
        entry = out.setdefault(d.table, {"deletes": [], "inserts": []})
        for key, rows in (("deletes", d.deletes), ("inserts", d.inserts)):
            entry[key] += [{c: json_value(t, v) for c, t, v in zip(ts.columns, ts.types, row, strict=True)}
                           for row in rows]
    print(json.dumps(out), flush=True)


def describe_text(name: str, schema: dict[str, Any]) -> str:
    lines = [f"Database: {name}", "", "Tables:"]
    for t in schema.get("tables", []):
        access = "public" if t.get("public") else "private"
        lines.append(f"  {t['name']} ({access})")
        for c in t["columns"]:
            marks = []
            if c["name"] == t.get("primary_key"):
                marks.append("primary key")
            if c["name"] in t.get("unique", []):
                marks.append("unique")
            if c["name"] in t.get("autoinc", []):
                marks.append("auto-increment")
            if c["name"] in t.get("indexes", []):
                marks.append("indexed")
            if "default" in c:
                marks.append(f"default {json.dumps(c['default'])}")
            suffix = f"  [{', '.join(marks)}]" if marks else ""
            lines.append(f"    {c['name']}: {col_type_from_description(c['type'])}{suffix}")
    lines += ["", "Reducers:"]
    for r in schema.get("reducers", []):
        params = ", ".join(f"{p['name']}: {col_type_from_description(p['type'])}" for p in r["params"])
        kind = f"  (lifecycle: {r['lifecycle']})" if r.get("lifecycle") else ""
        lines.append(f"  {r['name']}({params}){kind}")
    return "\n".join(visible(line) for line in lines)


async def cmd_describe(args: argparse.Namespace) -> int:
    """show a database's tables and reducers

    Show tables (columns, types, constraints, access) and reducers (arguments).

    example: chat-server describe quickstart-chat --json
    """
    client = await _connect(args)
    await client.close()
    if not client.schema.get("tables") and not client.schema.get("reducers"):
        raise CliError(f"no such database: {args.database}")
    if args.json:
        print(json.dumps({"database": args.database, **client.schema}, indent=2))
    else:
        print(describe_text(args.database, client.schema))
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError(f"{question} Refusing without a terminal to ask; pass --yes to confirm")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


async def cmd_publish(args: argparse.Namespace) -> int:
    """create or update a database from a module file

    Create a database, or update one (keeping its data and connected clients), from a module file.

    example: chat-server publish my-chat --module ./my_module.py
    """
    try:
        source = args.module.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {args.module}: {exc.strerror}") from None
    if args.clear_database and not args.yes and not _confirm(
            f"This deletes all data of database `{args.database}`. Continue?"):
        print("aborted", file=sys.stderr)
        return 1
    client = await _connect(args)
    try:
        detail = await client.publish(source, args.module.name, clear=args.clear_database)
    finally:
        await client.close()
    _print_lines(detail)
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    """delete a database

    Delete a database and all its data (asks unless --yes).

    example: chat-server delete my-chat --yes
    """
    if not args.yes and not _confirm(f"Delete database `{args.database}` and all its data?"):
        print("aborted", file=sys.stderr)
        return 1
    client = await _connect(args)
    try:
        detail = await client.delete()
    finally:
        await client.close()
    _print_lines(detail)
    return 0
