"""The API's Redis client: created lazily in each process, with timeouts Totara can live with.

gunicorn forks workers after loading the configuration and a connection pool must not cross a
fork, so the client is made on first use and remade if the process id changes. Totara gives up
after 2 s, so a Redis that is down or stuck must fail a request well before that (it becomes a
503): short connect and read timeouts and a single immediate retry, which only covers a pooled
connection that the server closed meanwhile.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from runtime import redisconn
from runtime.config import Settings

CONNECT_TIMEOUT = 0.3
READ_TIMEOUT = 0.8

# What a request turns into a 503 rather than a 500: the store is unreachable or too slow, or
# a Redis Cluster is failing over (the cluster or a slot's master is down, a slot is moving,
# redirects ran out); each passes within seconds, so Totara is told to try again, not that the
# service is broken. A plain ResponseError (wrong type, bad command) stays a 500.
UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
               redis.exceptions.ClusterError, redis.exceptions.TryAgainError,
               redis.exceptions.AskError, redis.exceptions.SlotNotCoveredError)


def client_options() -> dict[str, object]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": READ_TIMEOUT,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }


class LazyRedis:
    """Callable returning this process's client for ``settings``, connecting on first call."""

    def __init__(self, settings: Settings,
                 connect: Callable[..., redis.Redis] = redisconn.connect) -> None:
        self._settings = settings
        self._connect = connect
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()
        # A forked child forgets the parent's client (told by the fork, not by asking for the
        # process id on every request); a weak reference, so the hook never keeps it alive.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(ref))

    def __call__(self) -> redis.Redis:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = self._connect(self._settings, **client_options())
            return self._client


def _forget(ref: weakref.ref) -> None:
    lazy = ref()
    if lazy is not None:
        lazy._client = None
        lazy._lock = threading.Lock()  # it may have been held by another thread at the fork


def fixed(client: redis.Redis) -> Callable[[], redis.Redis]:
    """A provider for a client made by the caller (tests, benchmarks)."""
    return lambda: client
