"""The Falcon application factory: ``gunicorn -c deploy/gunicorn.conf.py 'api.app:create_app()'``.

Called without arguments (by gunicorn, in each worker after fork) it reads the ``ML_*``
configuration and connects to Redis lazily, on the first request of the process. Tests and
benchmarks pass their own settings and client instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import falcon
import redis

from api import connection
from api.auth import AuthState, TotaraAuth
from api.errors import ErrorHandlers
from api.health import HealthCheck, Livez, Readyz
from api.home import Favicon, Home, OpenApi
from api.reader import Reader
from api.recommend import ColdCounters, SimilarItems, UserItems
from recommender import redisconn
from recommender.config import Settings, load_or_exit


def create_app(settings: Settings | None = None, redis_client: redis.Redis | None = None, *,
               counters: ColdCounters | None = None, auth_state: AuthState | None = None,
               broker_url: Callable[[], str] | None = None,
               pointer_ttl: float = 1.0) -> falcon.App:
    """Build the app; ``counters`` and ``auth_state`` let callers observe it."""
    if settings is None:
        settings = load_or_exit()
        _configure_logging(settings.log_level)
    client = (connection.fixed(redis_client) if redis_client is not None
              else connection.LazyRedis(settings))
    if broker_url is None:
        def broker_url() -> str:
            return redisconn.broker_url(settings)

    counters = counters if counters is not None else ColdCounters()
    auth_state = auth_state if auth_state is not None else AuthState()
    reader = Reader(client, pointer_ttl=pointer_ttl)

    app = falcon.App(middleware=[TotaraAuth(settings.totara_key, settings.dev, auth_state)])
    ErrorHandlers(settings.dev).install(app)
    app.add_route("/", Home(settings.dev))
    app.add_route("/favicon.ico", Favicon())
    app.add_route("/openapi.json", OpenApi())
    app.add_route("/user-items", UserItems(reader, counters))
    app.add_route("/similar-items", SimilarItems(reader))
    app.add_route("/health-check", HealthCheck(settings, client, auth_state, broker_url))
    app.add_route("/livez", Livez())
    app.add_route("/readyz", Readyz(reader))
    return app


def _configure_logging(level: str) -> None:
    # Under gunicorn the root logger has no handler; without one, warnings would be lost.
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
