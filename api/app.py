"""The Falcon application factory: ``gunicorn -c deploy/gunicorn.conf.py 'api.app:create_app()'``.

Called without arguments (by gunicorn, in each worker after fork) it reads the ``ML_*``
configuration and connects to Redis lazily, on the first request of the process. Tests and
benchmarks pass their own settings and client instead.
"""

from __future__ import annotations

from collections.abc import Callable

import falcon
import redis

from api import connection, explorer
from api.auth import AuthState, TotaraAuth
from api.errors import ErrorHandlers
from api.health import HealthCheck, Livez, Readyz
from api.home import Favicon, Home, OpenApi
from api.metrics import MetricsEndpoint
from api.observe import RequestObserver
from api.pagecache import STATUS_PAGE_TTL, CachedPage
from api.reader import Reader
from api.recommend import ColdCounters, SimilarItems, UserItems
from runtime import logsetup, redisconn
from runtime.config import Settings, load_or_exit


def create_app(settings: Settings | None = None, redis_client: redis.Redis | None = None, *,
               counters: ColdCounters | None = None, auth_state: AuthState | None = None,
               broker_url: Callable[[], str] | None = None,
               pointer_ttl: float = 1.0,
               status_page_ttl: float = STATUS_PAGE_TTL) -> falcon.App:
    """Build the app; ``counters`` and ``auth_state`` let callers observe it."""
    if settings is None:
        settings = load_or_exit()
        logsetup.configure(settings.log_level, settings.log_format,
                           [settings.totara_key, settings.explorer_password])
    client = (connection.fixed(redis_client) if redis_client is not None
              else connection.LazyRedis(settings))
    if broker_url is None:
        def broker_url() -> str:
            return redisconn.broker_url(settings)

    counters = counters if counters is not None else ColdCounters()
    auth_state = auth_state if auth_state is not None else AuthState()
    reader = Reader(client, pointer_ttl=pointer_ttl)

    # The observer goes first: it also counts the 401s that authentication answers.
    app = falcon.App(middleware=[RequestObserver(settings.access_log),
                                 TotaraAuth(settings.totara_key, settings.dev, auth_state)])
    ErrorHandlers(settings.dev).install(app)
    app.add_route("/", CachedPage(Home(settings.dev, client, broker_url,
                                       settings.retrain_freq_minutes,
                                       totara_url=settings.totara_url), status_page_ttl))
    app.add_route("/favicon.ico", Favicon())
    app.add_route("/openapi.json", OpenApi())
    app.add_route("/user-items", UserItems(reader, counters))
    app.add_route("/similar-items", SimilarItems(reader))
    app.add_route("/health-check", HealthCheck(settings, client, auth_state, broker_url))
    app.add_route("/livez", Livez())
    app.add_route("/readyz", Readyz())
    app.add_route("/metrics", MetricsEndpoint(client, settings.retrain_freq_minutes))
    explorer.install(app, settings.explorer_password, reader)
    return app

