"""A Falcon test client on the API app, signing requests as Totara does."""

from __future__ import annotations

import fakeredis
import falcon.testing

from api.app import create_app
from api.auth import AuthState
from api.recommend import ColdCounters
from runtime.config import Settings
from runtime.signing import signed_headers

KEY = "test-shared-secret-0123456789"  # the ML_TOTARA_KEY of tests/conftest.py's base_env


class Api:
    """A test client plus what the app exposes to observers."""

    def __init__(self, settings: Settings, redis_client: fakeredis.FakeRedis,
                 **options: object) -> None:
        self.counters = ColdCounters()
        self.auth = AuthState()
        self.redis = redis_client
        # No caching (pointer, status page): tests publish and read at once; caching has its own
        # tests.
        options.setdefault("pointer_ttl", 0.0)
        options.setdefault("status_page_ttl", 0.0)
        options.setdefault("broker_url", lambda: "memory://")
        self.app = create_app(settings, redis_client, counters=self.counters,
                              auth_state=self.auth, **options)
        self.client = falcon.testing.TestClient(self.app)

    def get(self, path: str, params: dict[str, object] | None = None,
            headers: dict[str, str] | None = None, **kwargs: object) -> falcon.testing.Result:
        """A GET signed as Totara signs it, unless ``headers`` are given."""
        return self.client.simulate_get(
            path, params={k: str(v) for k, v in (params or {}).items()} or None,
            headers=signed_headers(KEY) if headers is None else headers, **kwargs)

    def user_items(self, user: object = 1, item_type: str = "container_course",
                   tenant: object = 0, n_items: object = 25) -> falcon.testing.Result:
        return self.get("/user-items", {"totara_user_id": user, "item_type": item_type,
                                        "tenant": tenant, "n_items": n_items})

    def similar_items(self, item: str = "engage_article1", tenant: object = 0,
                      n_items: object = 15) -> falcon.testing.Result:
        return self.get("/similar-items", {"totara_item_id": item, "tenant": tenant,
                                           "n_items": n_items})
