"""Totara-like traffic against a running service: the operator's smoke and load test.

    python -m bench traffic --url http://127.0.0.1:5000 --rate 50 --duration 60 \\
        [--key KEY] [--export-dir DIR | --tenants 0,3 --users 5000 --items 800]

Requests are signed as Totara signs them (``ML_TOTARA_KEY`` unless ``--key``), sent open-loop at
``--rate`` per second (a slow answer does not slow the schedule down, as real users do not wait
for each other), each on a new connection like Totara's curl, and split as Totara's pages make
them: /user-items for the Recommendations block and recommended workspaces (courses,
micro-learning, workspaces), /similar-items for related articles and playlists, now and then a
/health-check. A share of the users (``--cold-share``) are unknown to the model, as users who
joined after the last export. Prints latency percentiles per endpoint, answers by kind and
errors; exit status 1 when a request got no answer or a status other than 200.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import itertools
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from runtime.signing import signed_headers

# (endpoint, parameter, share of requests): Totara asks for user items on every dashboard with
# the Recommendations block (three types), similar items on article and playlist pages.
MIX = (
    ("/user-items", "container_course", 0.35),
    ("/user-items", "engage_microlearning", 0.20),
    ("/user-items", "container_workspace", 0.15),
    ("/similar-items", "engage_article", 0.22),
    ("/similar-items", "totara_playlist", 0.07),
    ("/health-check", "", 0.01),
)
USER_ITEMS_N, SIMILAR_ITEMS_N = 25, 15  # Totara's default result counts
COLD_USER_OFFSET = 10_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the service's base URL")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--key", help="the shared key (default: ML_TOTARA_KEY)")
    parser.add_argument("--export-dir", type=Path,
                        help="a Totara export: tenants, users and items are taken from it")
    parser.add_argument("--tenants", default="0", help="comma-separated, without --export-dir")
    parser.add_argument("--users", type=int, default=1000,
                        help="user ids 1..N per tenant, without --export-dir")
    parser.add_argument("--items", type=int, default=200,
                        help="article and playlist ids 1..N, without --export-dir")
    parser.add_argument("--cold-share", type=float, default=0.05,
                        help="share of /user-items for users the model does not know")
    parser.add_argument("--threads", type=int, default=32, help="concurrent connections at most")
    parser.add_argument("--timeout", type=float, default=2.0, help="Totara's total timeout")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.set_defaults(run=main)


@dataclass
class Population:
    """Who and what the requests name, per tenant."""

    users: dict[str, list[int]]
    articles: dict[str, list[str]]
    playlists: dict[str, list[str]]

    @classmethod
    def from_export(cls, folder: Path) -> Population:
        with (folder / "tenants.csv").open(newline="") as handle:
            tenants = [row["tenants"] for row in csv.DictReader(handle)]
        users, articles, playlists = {}, {}, {}
        for tenant in tenants:
            with (folder / f"user_data_{tenant}.csv").open(newline="") as handle:
                users[tenant] = [int(row["user_id"]) for row in csv.DictReader(handle)]
            with (folder / f"item_data_{tenant}.csv").open(newline="") as handle:
                items = [row["item_id"] for row in csv.DictReader(handle)]
            # Totara sends engage_article<id> for micro-learning too.
            articles[tenant] = [i.replace("engage_microlearning", "engage_article")
                                for i in items if i.startswith("engage_")]
            playlists[tenant] = [i for i in items if i.startswith("totara_playlist")]
        return cls(users, articles, playlists)

    @classmethod
    def synthetic(cls, tenants: list[str], users: int, items: int) -> Population:
        return cls({t: list(range(1, users + 1)) for t in tenants},
                   {t: [f"engage_article{i}" for i in range(1, items + 1)] for t in tenants},
                   {t: [f"totara_playlist{i}" for i in range(1, items + 1)] for t in tenants})


@dataclass
class Request:
    endpoint: str
    query: dict[str, str | int]


def plan(population: Population, rng: random.Random, cold_share: float) -> Request:
    """One request drawn from Totara's mix."""
    endpoint, kind, _ = rng.choices(MIX, weights=[w for _, _, w in MIX])[0]
    tenant = rng.choice(list(population.users))
    if endpoint == "/user-items":
        known = population.users[tenant]
        cold = rng.random() < cold_share or not known
        user = COLD_USER_OFFSET + rng.randrange(1000) if cold else rng.choice(known)
        return Request(endpoint, {"totara_user_id": user, "item_type": kind, "tenant": tenant,
                                  "n_items": USER_ITEMS_N})
    if endpoint == "/similar-items":
        pool = (population.articles if kind == "engage_article" else population.playlists)[tenant]
        item = rng.choice(pool) if pool else f"{kind}1"
        return Request(endpoint, {"totara_item_id": item, "tenant": tenant,
                                  "n_items": SIMILAR_ITEMS_N})
    return Request(endpoint, {})


@dataclass
class Results:
    latency: dict[str, list[float]] = field(default_factory=dict)  # seconds, per endpoint
    answers: Counter = field(default_factory=Counter)  # (endpoint, kind of answer)
    errors: Counter = field(default_factory=Counter)  # (endpoint, HTTP status or exception)
    lag: list[float] = field(default_factory=list)  # how late each request was sent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, lag: float, answer: str | None,
               error: str | None) -> None:
        with self.lock:
            self.latency.setdefault(endpoint, []).append(seconds)
            self.lag.append(lag)
            if error is not None:
                self.errors[(endpoint, error)] += 1
            else:
                self.answers[(endpoint, answer)] += 1


def answer_kind(endpoint: str, body: bytes) -> str:
    """``success``, the failure envelope's message, or ``healthy``/``unhealthy``."""
    try:
        document = json.loads(body)
    except ValueError:
        return "not JSON"
    if endpoint == "/health-check":
        return "healthy" if not document.get("errors") else "unhealthy"
    if document.get("success") is True:
        return "success"
    return str(document.get("message", "failure"))[:80]


def send(base: str, key: str, request: Request, timeout: float) -> tuple[int, bytes]:
    parts = urlsplit(base)
    connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                        else http.client.HTTPConnection)
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    path = (parts.path.rstrip("/") + request.endpoint
            + (f"?{urlencode(request.query)}" if request.query else ""))
    try:
        connection.request("GET", path, headers={**signed_headers(key), "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def drive(base: str, key: str, population: Population, rate: float, duration: float,
          threads: int, timeout: float, cold_share: float, seed: int) -> Results:
    """Send ``rate * duration`` requests on schedule from up to ``threads`` threads."""
    results = Results()
    total = max(1, int(rate * duration))
    numbers = itertools.count()
    start = time.monotonic() + 0.05

    def loop() -> None:
        while (index := next(numbers)) < total:
            due = start + index / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            request = plan(population, random.Random(seed * 1_000_003 + index), cold_share)
            sent = time.monotonic()
            answer = error = None
            try:
                status, body = send(base, key, request, timeout)
                if status == 200:
                    answer = answer_kind(request.endpoint, body)
                else:
                    error = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
            results.record(request.endpoint, time.monotonic() - sent, sent - due, answer, error)

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(max(1, threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(duration + timeout + 30)
    return results


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(results: Results, elapsed: float) -> dict:
    endpoints = {}
    for endpoint, values in sorted(results.latency.items()):
        endpoints[endpoint] = {
            "requests": len(values),
            "errors": sum(n for (e, _), n in results.errors.items() if e == endpoint),
            **{f"p{int(q * 100)}_ms": round(_percentile(values, q) * 1000, 2)
               for q in (0.5, 0.9, 0.99)},
            "max_ms": round(max(values) * 1000, 2),
        }
    count = sum(len(v) for v in results.latency.values())
    return {"requests": count, "seconds": round(elapsed, 2),
            "rate": round(count / elapsed, 1) if elapsed else 0.0,
            "send_lag_p99_ms": round(_percentile(results.lag, 0.99) * 1000, 1),
            "endpoints": endpoints,
            "answers": {f"{e} {k}": n for (e, k), n in results.answers.most_common()},
            "errors": {f"{e} {k}": n for (e, k), n in results.errors.most_common()}}


def print_report(summary: dict) -> None:
    print(f"\n{summary['requests']} requests in {summary['seconds']} s "
          f"({summary['rate']}/s; sent on schedule within {summary['send_lag_p99_ms']} ms "
          "for 99 %)")
    print(f"\n{'endpoint':18}{'requests':>10}{'errors':>8}{'p50 ms':>9}{'p90 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}")
    for endpoint, row in summary["endpoints"].items():
        print(f"{endpoint:18}{row['requests']:10d}{row['errors']:8d}{row['p50_ms']:9.2f}"
              f"{row['p90_ms']:9.2f}{row['p99_ms']:9.2f}{row['max_ms']:9.2f}")
    print("\nanswers (HTTP 200):")
    for text, count in summary["answers"].items():
        print(f"  {count:8d}  {text}")
    print("errors (no answer, or not HTTP 200):" + ("" if summary["errors"] else " none"))
    for text, count in summary["errors"].items():
        print(f"  {count:8d}  {text}")


def main(args: argparse.Namespace) -> int:
    key = args.key or os.environ.get("ML_TOTARA_KEY", "")
    if not key:
        print("no key: pass --key or set ML_TOTARA_KEY", file=sys.stderr)
        return 2
    if args.rate <= 0 or args.duration <= 0:
        print("--rate and --duration must be positive", file=sys.stderr)
        return 2
    if args.export_dir is not None:
        population = Population.from_export(args.export_dir)
    else:
        population = Population.synthetic([t.strip() for t in args.tenants.split(",")
                                           if t.strip()], args.users, args.items)
    print(f"{args.url}: {args.rate:g} requests/s for {args.duration:g} s, tenants "
          f"{', '.join(population.users)}, {args.cold_share:.0%} cold users")
    started = time.monotonic()
    results = drive(args.url, key, population, args.rate, args.duration, args.threads,
                    args.timeout, args.cold_share, args.seed)
    summary = report(results, time.monotonic() - started)
    print_report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    errors = sum(results.errors.values())
    mean = statistics.fmean(results.lag) * 1000 if results.lag else 0.0
    if mean > 100:
        print(f"note: requests left {mean:.0f} ms late on average: raise --threads, or this "
              "machine cannot send that rate")
    return 1 if errors else 0
