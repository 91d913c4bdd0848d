"""The API's own Python per request, in process: /user-items, Redis stubbed out.

Measures what the app adds on top of gunicorn and the Redis round trip (the WSGI app called
directly), with and without the
request observer (request id, Prometheus counter and latency histogram), and with its access
line written (``--log-format``, to /dev/null), so the cost of the metrics and of the access log
can be read without the noise of a load generator. Publishes a demo model into an
in-memory Redis, copies its keys into a dict-backed stub, and times ``--requests`` signed
requests for users with published lists, alternating the two apps over ``--rounds``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from typing import Any

import falcon
import falcon.testing


class StubRedis:
    """The few commands the hot path uses, answered from dicts (no network, no parsing)."""

    def __init__(self, strings: dict[bytes, bytes], hashes: dict[bytes, dict[bytes, bytes]],
                 sets: dict[bytes, set]) -> None:
        self.strings, self.hashes, self.sets = strings, hashes, sets

    def get(self, key: str) -> bytes | None:
        return self.strings.get(key.encode())

    def hget(self, key: str, field: str) -> bytes | None:
        return self.hashes.get(key.encode(), {}).get(field.encode())

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(key.encode(), {}))

    def scard(self, key: str) -> int:
        return len(self.sets.get(key.encode(), ()))

    def pipeline(self, transaction: bool = False) -> Any:
        stub = self

        class Pipe:
            def __init__(self) -> None:
                self.calls: list[Any] = []

            def __getattr__(self, name: str) -> Any:
                return lambda *args: self.calls.append((name, args))

            def execute(self) -> list[Any]:
                return [getattr(stub, name)(*args) for name, args in self.calls]

        return Pipe()


def _stub_from(client: Any) -> StubRedis:
    strings, hashes, sets = {}, {}, {}
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"string":
            strings[key] = client.get(key)
        elif kind == b"hash":
            hashes[key] = client.hgetall(key)
        elif kind == b"set":
            sets[key] = client.smembers(key)
    return StubRedis(strings, hashes, sets)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--single-process", action="store_true",
                        help="in-memory metrics instead of gunicorn's multiprocess files")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="ML_LOG_FORMAT of the access lines of the 'with access log' app")
    parser.set_defaults(run=main)


def _per_request_us(app: falcon.App, environs: list[dict[str, Any]]) -> float:
    """Calls the WSGI app directly (falcon.testing's client costs ten times the app)."""
    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        pass

    started = time.perf_counter()
    for environ in environs:
        b"".join(app(dict(environ), start_response))
    return (time.perf_counter() - started) / len(environs) * 1e6


def _apps(settings: Any, stub: StubRedis) -> dict[str, falcon.App]:
    """The app as served, the same again (its access lines on), and without the observer."""
    from unittest import mock

    import api.app
    from api.observe import RequestObserver

    apps = {name: api.app.create_app(settings, stub, pointer_ttl=60.0)
            for name in ("with metrics", "with access log")}
    real_app = falcon.App

    def app_without_observer(middleware: list, **options: Any) -> falcon.App:
        kept = [m for m in middleware if not isinstance(m, RequestObserver)]
        return real_app(middleware=kept, **options)

    with mock.patch.object(falcon, "App", app_without_observer):
        apps["without"] = api.app.create_app(settings, stub, pointer_ttl=60.0)
    return apps


def main(args: argparse.Namespace) -> int:
    if not args.single_process:
        # As under deploy/gunicorn.conf.py; read by prometheus_client when first imported.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-metrics-")
    import fakeredis

    from runtime import logsetup
    from runtime.config import from_env
    from runtime.signing import signed_headers
    from tests.api.publish_fixture import USER_LISTS, publish_tiny_model

    key = "bench-key-0123456789"
    settings = from_env({"ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": key})
    fake = fakeredis.FakeRedis()
    publish_tiny_model(fake, "0")
    apps = _apps(settings, _stub_from(fake))
    # The access lines go through the service's handler, to /dev/null; only the app named for
    # them writes any (the logger's level is set per app below).
    root = logging.getLogger()
    root.handlers = [logsetup.Handler(args.log_format, stream=open(os.devnull, "w"))]  # noqa: SIM115
    root.setLevel(logging.INFO)
    access = logging.getLogger("api.access")
    users = list(USER_LISTS)
    results: dict[str, list[float]] = {name: [] for name in apps}
    for index in range(args.rounds):
        headers = signed_headers(key)
        environs = [falcon.testing.create_environ(
            "/user-items", query_string=f"totara_user_id={users[i % len(users)]}"
            "&item_type=container_course&tenant=0&n_items=25", headers=headers)
            for i in range(args.requests)]
        order = list(apps) if index % 2 == 0 else list(reversed(apps))
        for name in order:
            access.setLevel(logging.INFO if name == "with access log" else logging.WARNING)
            results[name].append(_per_request_us(apps[name], environs))
    for name, values in results.items():
        print(f"{name:15} median {statistics.median(values):6.2f} µs, best {min(values):6.2f} µs "
              f"per request (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    # The best round is the one least disturbed by other work on the machine.
    extra = min(results["with metrics"]) - min(results["without"])
    mode = "single-process" if args.single_process else "multiprocess (as under gunicorn)"
    print(f"observer cost, {mode}: {extra:.2f} µs per request (best rounds)")
    line = min(results["with access log"]) - min(results["with metrics"])
    print(f"access line cost, {args.log_format}: {line:.2f} µs per request (best rounds)")
    return 0
