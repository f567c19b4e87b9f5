"""The quickstart-chat module: users with names and presence, and messages.

This is SpacetimeDB's "Rust Module Quickstart" translated to Python, with the
same behaviour and messages.
"""

from dataclasses import replace
from typing import Annotated

from db_core import (Identity, PrimaryKey, ReducerContext, ReducerError, Timestamp, client_connected,
                     client_disconnected, log, reducer, table)


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
