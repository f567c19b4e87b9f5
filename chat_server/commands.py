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
import json
import math
import sys
from pathlib import Path
from typing import Any

from db_core.protocol import DeleteDatabase, Done, ErrorMessage, LogLines, Logs, Publish
from db_core.schema import INT_MAX, INT_MIN, col_type_from_description, col_type_from_json
from db_core.sql import format_table, json_value
from db_core.visible import visible

from .client import (DB_NAME_RULE, Client, ClientError, ConnectFailed, argument_type, check_database_name,
                     parse_server)
from .tokens import remember_cli, token_for

EXAMPLES = {
    "call": "example: chat-server call quickstart-chat send_message 'Hello, World!'",
    "sql": "example: chat-server sql quickstart-chat \"SELECT * FROM user WHERE online = true\"",
    "logs": "example: chat-server logs quickstart-chat -n 20 -f --level info",
    "subscribe": "example: chat-server subscribe quickstart-chat \"SELECT * FROM message\" -n 3 -t 60",
    "describe": "example: chat-server describe quickstart-chat --json",
    "publish": "example: chat-server publish my-chat --module ./my_module.py",
    "delete": "example: chat-server delete my-chat --yes",
}


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def add_client_commands(sub: Any, default_server: str) -> None:
    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description, epilog=EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--server", default=default_server, metavar="URL", type=argument_type(parse_server),
                       help=f"the server: http(s)://, ws(s):// or host:port (default {default_server})")
        p.add_argument("database", type=argument_type(check_database_name),
                       help=f"the database: {DB_NAME_RULE.removeprefix('use ')}")
        return p

    p = command("call", "call a reducer", "Call a reducer. Each ARG is JSON, or a plain string if it is not valid JSON. "
                "Prints nothing on success.")
    p.add_argument("reducer")
    p.add_argument("args", nargs="*", metavar="ARG", type=parse_arg)
    p.set_defaults(func=lambda a: _run(cmd_call(a)))

    p = command("sql", "run a SQL query", "Run one SQL statement and print the result as a table.")
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON array")
    p.set_defaults(func=lambda a: _run(cmd_sql(a)))

    p = command("logs", "print a database's module log (owner only)", "Print the module log of a database.")
    p.add_argument("-n", "--num-lines", type=_count, metavar="N", help="only the last N lines")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--level", choices=["trace", "debug", "info", "warn", "error"], help="only this level and above")
    p.set_defaults(func=lambda a: _run(cmd_logs(a)))

    p = command("subscribe", "print updates to queries as JSON lines",
                "Subscribe to queries and print one JSON line per transaction.")
    p.add_argument("queries", nargs="+", metavar="QUERY")
    p.add_argument("-n", "--num-updates", type=_count, metavar="N", help="exit after N updates")
    p.add_argument("-t", "--timeout", type=_seconds, metavar="SECONDS", help="exit after this many seconds")
    p.add_argument("--print-initial-update", action="store_true", help="print the initial rows first")
    p.set_defaults(func=lambda a: _run(cmd_subscribe(a)))

    p = command("describe", "show a database's tables and reducers", "Show tables (columns, types, "
                "constraints, access) and reducers (arguments).")
    p.add_argument("--json", action="store_true", help="print the schema as JSON")
    p.set_defaults(func=lambda a: _run(cmd_describe(a)))

    p = command("publish", "create or update a database from a module file",
                "Create a database, or update one (keeping its data and connected clients), from a module file.")
    p.add_argument("--module", required=True, type=Path, metavar="FILE", help="the module's .py file")
    p.add_argument("--clear-database", action="store_true", help="delete all data first (asks unless --yes)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=lambda a: _run(cmd_publish(a)))

    p = command("delete", "delete a database", "Delete a database and all its data (asks unless --yes).")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=lambda a: _run(cmd_delete(a)))


def _run(coro: Any) -> int:
    try:
        return asyncio.run(coro)
    except (CliError, ClientError) as exc:
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _connect(args: argparse.Namespace) -> Client:
    token = token_for(args.server)
    try:
        client = await Client.connect(args.server, args.database, token=token, endpoint="cli")
    except ConnectFailed as exc:
        raise CliError(str(exc)) from None
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
    client = await _connect(args)
    try:
        result = await client.call(args.reducer, *args.args)
    finally:
        await client.close()
    if isinstance(result, ErrorMessage):  # not run at all, e.g. no such database
        raise CliError(result.error)
    if result.status in ("committed", "no_changes"):
        return 0
    print(f"error: {visible(result.error or result.status)}", file=sys.stderr)
    return 1


async def cmd_sql(args: argparse.Namespace) -> int:
    client = await _connect(args)
    try:
        result = await client.sql(args.query)
    finally:
        await client.close()
    if result.error is not None:
        raise CliError(result.error)
    if result.affected is not None and not result.columns:
        if not args.json:
            print(f"{result.affected} row{'s' if result.affected != 1 else ''} affected")
        else:
            print(json.dumps({"affected": result.affected}))
        return 0
    types = [col_type_from_json(t) for t in result.types]
    rows = [tuple(t.from_wire(v) for t, v in zip(types, row)) for row in result.rows]
    if args.json:
        print(json.dumps([{c: json_value(t, v) for c, t, v in zip(result.columns, types, row)} for row in rows]))
    else:
        print(format_table(result.columns, types, rows))
    return 0


async def cmd_logs(args: argparse.Namespace) -> int:
    client = await _connect(args)
    try:
        reply = await client.request(lambda rid: Logs(rid, args.num_lines, args.level, args.follow), stream=args.follow)
        if isinstance(reply, ErrorMessage):
            raise CliError(reply.error)
        assert isinstance(reply, LogLines)
        _print_lines(reply.lines)
        if args.follow:
            async for more in client.stream(reply.id):
                if isinstance(more, LogLines):
                    _print_lines(more.lines)
    finally:
        await client.close()
    return 0


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(visible(line))
    sys.stdout.flush()


def _row_json(client: Client, table: str, row: Any) -> dict[str, Any]:
    ts = client.tables[table]
    return {c: json_value(t, v) for c, t, v in zip(ts.columns, ts.types, row)}


async def cmd_subscribe(args: argparse.Namespace) -> int:
    client = await _connect(args)

    def emit(updates: dict[str, dict[str, list[Any]]]) -> None:
        print(json.dumps(updates), flush=True)

    try:
        initial = await client.subscribe_rows(args.queries)
        if args.print_initial_update:
            out: dict[str, dict[str, list[Any]]] = {}
            for q in initial:
                entry = out.setdefault(q.table, {"deletes": [], "inserts": []})
                entry["inserts"] += [_row_json(client, q.table, client.tables[q.table].decode(r)) for r in q.inserts]
            emit(out)
        count = 0

        async def consume() -> None:
            nonlocal count
            async for tx in client.raw_updates():
                out: dict[str, dict[str, list[Any]]] = {}
                for q in tx.updates:
                    entry = out.setdefault(q.table, {"deletes": [], "inserts": []})
                    decode = client.tables[q.table].decode
                    entry["deletes"] += [_row_json(client, q.table, decode(r)) for r in q.deletes]
                    entry["inserts"] += [_row_json(client, q.table, decode(r)) for r in q.inserts]
                emit(out)
                count += 1
                if args.num_updates is not None and count >= args.num_updates:
                    return

        if args.num_updates == 0:
            return 0
        try:
            await asyncio.wait_for(consume(), args.timeout)
        except asyncio.TimeoutError:
            pass
    finally:
        await client.close()
    return 0


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
        reply = await client.request(lambda rid: Publish(rid, source, args.module.name, args.clear_database))
    finally:
        await client.close()
    if isinstance(reply, ErrorMessage):
        raise CliError(reply.error)
    assert isinstance(reply, Done)
    for line in reply.detail:
        print(visible(line))
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes and not _confirm(f"Delete database `{args.database}` and all its data?"):
        print("aborted", file=sys.stderr)
        return 1
    client = await _connect(args)
    try:
        reply = await client.request(lambda rid: DeleteDatabase(rid))
    finally:
        await client.close()
    if isinstance(reply, ErrorMessage):
        raise CliError(reply.error)
    for line in reply.detail:
        print(visible(line))
    return 0
