"""``totara-recommender-api``: the API under gunicorn with the service's settings.

The same as ``gunicorn -c deploy/gunicorn.conf.py 'api.app:create_app()'`` in a checkout, for an
installed package: the settings come from api/gunicorn_conf.py (ML_BIND, WEB_CONCURRENCY, the
log format). Other arguments go to gunicorn (``totara-recommender-api --timeout 60``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

APP = "api.app:create_app()"
CONFIG = "python:api.gunicorn_conf"


def main(argv: Sequence[str] | None = None) -> int:
    from gunicorn.app.wsgiapp import WSGIApplication

    args = list(sys.argv[1:] if argv is None else argv)
    # gunicorn reads its command line from sys.argv; the app is named last, after any option.
    sys.argv = ["totara-recommender-api", "-c", CONFIG, *args, APP]
    WSGIApplication("%(prog)s [gunicorn options]").run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
