"""The quickstart-chat module: users with names and presence, and messages.

This is SpacetimeDB's "Rust Module Quickstart" translated to Python, with the
same behaviour and messages, and the checks its text suggests: a name is 1-32
printable characters on one line, not all spaces; a message is at most 4,000
characters, with no control characters but newline and tab.
"""

import re
from dataclasses import replace
from typing import Annotated

from db_core import (Identity, PrimaryKey, ReducerContext, ReducerError, Timestamp, client_connected,
                     client_disconnected, log, reducer, table)
from db_core.visible import visible

MAX_NAME_CHARS = 32
MAX_MESSAGE_CHARS = 4000
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # control characters but tab and newline


@table(name="user", public=True)
class User:
    identity: Annotated[Identity, PrimaryKey]
    name: str | None
    online: bool


@table(name="message", public=True)
class Message:
    sender: Identity
    sent: Timestamp
    text: str


def validate_name(name: str) -> str:
    if not name:
        raise ReducerError("Names must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise ReducerError(f"Names must be at most {MAX_NAME_CHARS} characters")
    if "\n" in name or "\r" in name:
        raise ReducerError("Names must be on one line")
    for char in name:
        # Not printable: a control, format (bidi, zero-width), separator or unassigned character;
        # not visible as it is: a letter that draws nothing, such as a Hangul filler.
        if not char.isprintable() or visible(char) != char:
            raise ReducerError(f"Names must contain only printable characters, not U+{ord(char):04X}")
    if name.isspace():
        raise ReducerError("Names must not be only spaces")
    return name


@reducer
def set_name(ctx: ReducerContext, name: str) -> None:
    """Set the caller's display name."""
    name = validate_name(name)
    user = ctx.db.user.identity.find(ctx.sender)
    if user is None:
        raise ReducerError("Cannot set name for unknown user")
    ctx.db.user.identity.update(replace(user, name=name))


def validate_message(text: str) -> str:
    if not text:
        raise ReducerError("Messages must not be empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ReducerError(f"Messages must be at most {MAX_MESSAGE_CHARS:,} characters")
    control = CONTROL.search(text)
    if control is not None:
        raise ReducerError("Messages must not contain control characters other than newline and tab, "
                           f"not U+{ord(control.group()):04X}")
    return text


@reducer
def send_message(ctx: ReducerContext, text: str) -> None:
    """Post a message from the caller."""
    text = validate_message(text)
    log.info(text)
    ctx.db.message.insert(Message(sender=ctx.sender, sent=ctx.timestamp, text=text))


@client_connected
def identity_connected(ctx: ReducerContext) -> None:
    user = ctx.db.user.identity.find(ctx.sender)
    if user is not None:
        # A returning user: keep their name, mark them online.
        ctx.db.user.identity.update(replace(user, online=True))
    else:
        ctx.db.user.insert(User(identity=ctx.sender, name=None, online=True))


@client_disconnected
def identity_disconnected(ctx: ReducerContext) -> None:
    user = ctx.db.user.identity.find(ctx.sender)
    if user is not None:
        ctx.db.user.identity.update(replace(user, online=False))
    else:
        log.warn(f"Disconnect event for unknown user with identity {ctx.sender.to_hex()}")
