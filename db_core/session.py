"""A client's session as a database's host sees it, and what one client may ask (``Limits``)."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

from .evaluation import Budget, Job
from .logs import LogRecord
from .outbox import Payload
from .protocol import ClientMessage
from .ratelimit import Rate, TokenBucket
from .subscription import Subscription
from .types import ConnectionId, Identity


@dataclasses.dataclass(slots=True)
class Limits:
    """What one client may ask; each breach gets a clear error."""

    max_args_bytes: int = 64 * 1024
    max_in_flight: int = 256          # calls and queries awaiting their reply, per connection
    max_queries_per_subscribe: int = 64
    max_subscriptions: int = 256      # subscribe requests alive per connection
    # Requests (calls, queries, subscriptions) per second: a busy human sends a few, a benchmark
    # client a thousand; past the rate a request is refused with ``retry_after``.
    connection_requests: Rate = Rate(2000, 2000)
    identity_requests: Rate = Rate(4000, 4000)   # summed over the identity's connections
    # A connection that goes on sending this many requests while refused is not listening: closed.
    max_refused_in_a_row: int = 5000
    budget: Budget = Budget()         # per one-off SELECT, subscribe or unsubscribe
    max_running_queries: int = 4      # evaluated at once per database; more wait their turn


# After a rate-limit refusal a connection is refused at least this long, so that the requests it had
# already sent (within a round trip) are refused too and its resends keep their order.
RATE_PENALTY_SECONDS = 0.25


class Session:
    """One client connection as the host sees it."""

    __slots__ = ("connection_id", "identity", "subs", "in_flight", "closed", "signature", "hooks", "log_follow",
                 "token", "bucket", "identity_bucket", "blocked_until", "blocked_by_connection", "refused_in_a_row",
                 "close_reason", "job", "request", "backlog", "waiting")

    def __init__(self, connection_id: ConnectionId, identity: Identity, hooks: bool = True, token: str = "") -> None:
        self.connection_id = connection_id
        self.identity = identity
        self.hooks = hooks  # False: a CLI session, no lifecycle hooks, reducers see no connection id
        self.log_follow: tuple[int, Callable[[LogRecord], None]] | None = None
        self.token = token
        self.subs: dict[int, Subscription] = {}
        self.in_flight = 0
        self.closed = False
        self.signature: tuple[int, ...] | None = ()
        self.bucket: TokenBucket | None = None  # set by the host that serves the session
        self.identity_bucket: TokenBucket | None = None  # shared by the identity's sessions, the same way
        self.blocked_until = 0.0
        self.blocked_by_connection = True  # which rate ``blocked_until`` enforces: the connection's or the identity's
        self.refused_in_a_row = 0
        self.close_reason: str | None = None  # set by the host: the adapter closes the connection (1008)
        # A session's requests are handled in order: while a query of its own is being evaluated
        # (``job``, for ``request``), or waits for its turn (``waiting``), the later ones queue here.
        self.job: Job | None = None
        self.request: ClientMessage | None = None
        self.backlog: collections.deque[tuple[ClientMessage, int]] = collections.deque()
        self.waiting = False

    def __repr__(self) -> str:
        return f"Session({self.identity.to_abbreviated_hex()}, {self.connection_id.hex()[:8]})"


Out = tuple[Session, Payload]  # one payload for one session
