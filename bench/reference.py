"""The reference the API is measured against: a Falcon app answering with one Redis GET.

Run under the same gunicorn configuration as the API. It does what any API serving precomputed
answers must do at least (parse the query, one round trip, send bytes) and nothing else: no
authentication, no validation, no formatting.
"""

from __future__ import annotations

import os

import falcon
import redis

from api import connection

ANSWER_KEY = "bench:ref:{}"


class Answer:
    def __init__(self) -> None:
        self._client: redis.Redis | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._client is None:  # after gunicorn's fork, like the API
            self._client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"],
                                                **connection.client_options())
        resp.data = self._client.get(ANSWER_KEY.format(req.get_param("totara_user_id")))
        resp.content_type = falcon.MEDIA_JSON


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/user-items", Answer())
    return app
