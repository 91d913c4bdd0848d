"""Broker connections: the URL from the configuration and the options every process uses."""

from __future__ import annotations

from kombu import Connection

from consumer.topology import Topology, is_amqp
from runtime.config import Settings
from runtime.redisconn import broker_url

# AMQP heartbeats: a worker whose process hangs is noticed by RabbitMQ within two intervals and
# its message goes to another worker. The connection thread checks them every loop turn.
HEARTBEAT_SECONDS = 30


def connection_for(url: str, *, heartbeat: int = HEARTBEAT_SECONDS) -> Connection:
    """A (lazy) kombu connection with this service's options for ``url``."""
    options: dict[str, object] = {}
    if is_amqp(url):
        # A publish returns only once RabbitMQ has taken responsibility for the message, so an
        # export-ready is acked only after all of its train events are safely queued.
        options["confirm_publish"] = True
    elif url.startswith(("redis", "rediss")):
        # A synchronous command on a dead connection must not hang the connection thread.
        options["socket_timeout"] = 10
        options["socket_connect_timeout"] = 5
    return Connection(url, heartbeat=heartbeat if is_amqp(url) else 0,
                      transport_options=options, connect_timeout=5)


def from_settings(settings: Settings, prefix: str | None = None) -> tuple[Connection, Topology]:
    """The configured broker (``ML_BROKER_URL``, else the Redis in use) and its topology."""
    url = broker_url(settings)
    topology = Topology(prefix=prefix or settings.broker_prefix, amqp=is_amqp(url),
                        queue_type=settings.broker_queue_type)
    return connection_for(url), topology
