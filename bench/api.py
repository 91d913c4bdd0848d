"""API throughput and latency: /user-items against a one-GET reference app, same gunicorn.

Publishes a model for a Totara export (a generated demo export unless --export-dir names one,
such as OULAD's from ``python -m recommender import-oulad``) into a private Redis, runs the API
and bench/reference.py under deploy/gunicorn.conf.py, and drives both with wrk: signed requests
for users with published lists, the item types Totara asks for, n_items=25. Prints each app's
maximum throughput and p50/p99 (the median of --rounds alternating runs), the throughput ratio
(the median of the rounds' ratios), and the latency of each at half its maximum rate.
Targets (issue 3): ratio >= 0.8, API p99 <= 10 ms at half rate.
Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from api import envelope
from bench import reference, servers, wrk
from published import keys, packing

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "gunicorn.conf.py"
MAX_USERS = 20000  # user ids in the load script
TARGET_RATIO, TARGET_P99_MS = 0.8, 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export-dir", type=Path, help="a Totara export (tenant 0 is used); "
                        "default: a generated demo export")
    parser.add_argument("--users", type=int, default=5000, help="demo export size")
    parser.add_argument("--items", type=int, default=800, help="demo export size")
    parser.add_argument("--algorithm", default="mf", choices=("hybrid", "partial", "mf"))
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per app")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY (default: the config's)")
    parser.add_argument("--worker-class", help="gunicorn -k, e.g. gthread (default: config's)")
    parser.add_argument("--gunicorn-threads", type=int, help="gunicorn --threads (gthread)")
    parser.add_argument("--keep-alive", action="store_true",
                        help="reuse connections (Totara's curl does not: default is close)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.set_defaults(run=main)


def _http_answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"GET /livez HTTP/1.0\r\n\r\n")
        return sock.recv(12).startswith(b"HTTP/1.")


def _train(export_dir: Path, algorithm: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "recommender", "train", "--export-dir", str(export_dir),
               "--tenant", "0", "--algorithm", algorithm]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"training failed:\n{done.stdout}\n{done.stderr}")


def _published_users(client: redis.Redis) -> list[int]:
    version = client.get(keys.current("0")).decode()
    pipe = client.pipeline(transaction=False)
    for bucket in range(keys.USER_BUCKETS):
        pipe.hkeys(keys.user_bucket("0", version, bucket))  # bucket b holds ids = b mod 1024
    users = sorted(int(u) for fields in pipe.execute() for u in fields)
    return users[:MAX_USERS]


def _write_reference_answers(client: redis.Redis, users: list[int]) -> float:
    """The reference's answers: each user's 25 courses, as the API formats them; returns the
    mean number of items per answer."""
    version = client.get(keys.current("0")).decode()
    sizes = []
    pipe = client.pipeline(transaction=False)
    for user in users:
        blob = client.hget(keys.user_bucket("0", version, user), str(user))
        ids, scores = packing.unpack(blob, 0)
        sizes.append(min(len(ids), 25))
        pipe.set(reference.ANSWER_KEY.format(user), envelope.success(ids, scores, 25))
    pipe.execute()
    return statistics.fmean(sizes)


def _gunicorn(app: str, env: dict[str, str], args: argparse.Namespace,
              log: Path) -> tuple[subprocess.Popen, int]:
    port = servers.free_port()
    command = [str(Path(sys.executable).with_name("gunicorn")), "-c", str(CONF), app]
    if args.worker_class:
        command += ["-k", args.worker_class]
    if args.gunicorn_threads:
        command += ["--threads", str(args.gunicorn_threads)]
    process = subprocess.Popen(command, cwd=ROOT, env={**env, "ML_BIND": f"127.0.0.1:{port}"},
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        servers.wait(lambda: _http_answers(port), f"gunicorn for {app} (see {log})")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, port


def _half_rate(url: str, key: str, users: list[int], target: float, args: argparse.Namespace,
               tmp: Path) -> wrk.Result:
    """A run at about ``target`` requests/s: each connection waits between its requests."""
    delay = max(1, round(args.connections * 1000 / target - 1))
    result = None
    for _ in range(3):  # wrk's delay is whole milliseconds: correct it once or twice
        result = wrk.run(url, key, users, args.seconds, args.connections, args.threads, tmp,
                         delay_ms=delay, connection=_connection(args))
        if abs(result.requests_per_second - target) <= 0.15 * target:
            break
        delay = max(1, round(delay * result.requests_per_second / target))
    return result


def _connection(args: argparse.Namespace) -> str:
    return "keep-alive" if args.keep_alive else "close"


def main(args: argparse.Namespace) -> int:
    if not wrk.available():
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        tmp = Path(scratch)
        redis_process, redis_url = servers.start_redis(tmp)
        apps: list[subprocess.Popen] = []
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ML_")}
            env.update(ML_TOTARA_URL="http://127.0.0.1:9", ML_TOTARA_KEY=key,
                       ML_REDIS_URL=redis_url, BENCH_REDIS_URL=redis_url,
                       ML_MODELS_DIR=str(tmp / "models"), ML_LOGS_DIR=str(tmp / "logs"),
                       ML_LOG_LEVEL="WARNING")
            if args.workers:
                env["WEB_CONCURRENCY"] = str(args.workers)
            export_dir = args.export_dir
            if export_dir is None:
                from recommender.offline import demo

                export_dir = tmp / "export"
                demo.write_demo_export(export_dir, tenants=1, users=args.users,
                                       items=args.items, interactions=args.users * 20)
            started = time.monotonic()
            _train(export_dir, args.algorithm, env)
            client = redis.Redis.from_url(redis_url)
            users = _published_users(client)
            mean_items = _write_reference_answers(client, users)
            print(f"published tenant 0 ({args.algorithm}) in {time.monotonic() - started:.1f} s: "
                  f"{len(users)} users with lists, {mean_items:.1f} items per answer")
            api_process, api_port = _gunicorn("api.app:create_app()", env, args, tmp / "api.log")
            apps.append(api_process)
            ref_process, ref_port = _gunicorn("bench.reference:create_app()", env, args,
                                              tmp / "ref.log")
            apps.append(ref_process)
            urls = {"api": f"http://127.0.0.1:{api_port}",
                    "reference": f"http://127.0.0.1:{ref_port}"}
            pids = {"api": api_process.pid, "reference": ref_process.pid,
                    "redis": redis_process.pid}
            return _measure(urls, key, users, args, tmp, pids)
        finally:
            for process in apps:
                process.terminate()
            for process in apps:
                process.wait(timeout=30)
            redis_process.terminate()
            redis_process.wait(timeout=10)


def _run_counting_cpu(name: str, url: str, key: str, users: list[int],
                      args: argparse.Namespace, tmp: Path, pids: dict[str, int],
                      cpu: dict[str, dict[str, float]]) -> wrk.Result:
    """One maximum-rate run; adds the CPU seconds of the app's processes, of Redis and of wrk
    to ``cpu[name]``, so the cost per request of each part can be shown."""
    before = {part: servers.cpu_seconds(pids[part]) for part in (name, "redis")}
    started = os.times()
    result = wrk.run(url, key, users, args.seconds, args.connections, args.threads, tmp,
                     connection=_connection(args))
    ended = os.times()
    spent = cpu.setdefault(name, {"app": 0.0, "redis": 0.0, "wrk": 0.0, "requests": 0})
    spent["app"] += servers.cpu_seconds(pids[name]) - before[name]
    spent["redis"] += servers.cpu_seconds(pids["redis"]) - before["redis"]
    spent["wrk"] += (ended.children_user + ended.children_system
                     - started.children_user - started.children_system)
    spent["requests"] += result.requests
    return result


def _measure(urls: dict[str, str], key: str, users: list[int], args: argparse.Namespace,
             tmp: Path, pids: dict[str, int]) -> int:
    for url in urls.values():  # warm-up: workers import, connect and cache the pointer
        wrk.run(url, key, users, 2, args.connections, args.threads, tmp,
                connection=_connection(args))
    load_before = os.getloadavg()[0]
    runs: dict[str, list[wrk.Result]] = {name: [] for name in urls}
    cpu: dict[str, dict[str, float]] = {}
    for index in range(args.rounds):
        # Alternate which app goes first: drift in the machine's load then hits both alike.
        for name in (list(urls) if index % 2 == 0 else list(reversed(urls))):
            runs[name].append(_run_counting_cpu(name, urls[name], key, users, args, tmp, pids,
                                                cpu))
    best = {name: sorted(results, key=lambda r: r.requests_per_second)[len(results) // 2]
            for name, results in runs.items()}
    half = {name: _half_rate(url, key, users, best[name].requests_per_second / 2, args, tmp)
            for name, url in urls.items()}
    # The median of per-round ratios: each round's two runs saw about the same machine.
    ratio = statistics.median(a.requests_per_second / r.requests_per_second
                              for a, r in zip(runs["api"], runs["reference"], strict=True))
    print(f"\n{'':24}{'max req/s':>10}{'p50 ms':>9}{'p99 ms':>9}   "
          f"{'half-rate req/s':>15}{'p50 ms':>9}{'p99 ms':>9}{'failures':>10}")
    for name, label in (("api", "/user-items (API)"), ("reference", "reference (1 GET)")):
        full, low = best[name], half[name]
        failures = sum(r.failures for r in runs[name]) + low.failures
        print(f"{label:24}{full.requests_per_second:10.0f}{full.p50_ms:9.2f}{full.p99_ms:9.2f}"
              f"   {low.requests_per_second:15.0f}{low.p50_ms:9.2f}{low.p99_ms:9.2f}"
              f"{failures:10d}")
    print("\nCPU per request at maximum rate (all rounds):")
    for name, label in (("api", "API"), ("reference", "reference")):
        spent = cpu[name]
        per = {part: 1e6 * spent[part] / max(spent["requests"], 1)
               for part in ("app", "redis", "wrk")}
        print(f"  {label:10} gunicorn + app {per['app']:6.0f} µs   Redis {per['redis']:4.0f} µs   "
              f"wrk {per['wrk']:4.0f} µs   total {sum(per.values()):6.0f} µs")
    ok_ratio = ratio >= TARGET_RATIO
    ok_p99 = half["api"].p99_ms <= TARGET_P99_MS
    print(f"\nthroughput ratio API / reference: {ratio:.3f} (target >= {TARGET_RATIO}): "
          f"{'met' if ok_ratio else 'NOT met'}")
    print(f"API p99 at half its maximum rate: {half['api'].p99_ms:.2f} ms "
          f"(target <= {TARGET_P99_MS:g} ms): {'met' if ok_p99 else 'NOT met'}")
    print(f"({args.rounds} rounds of {args.seconds:g} s, {args.connections} connections, "
          f"Connection: {_connection(args)}, {os.cpu_count()} CPUs shared by wrk, gunicorn "
          f"and Redis; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: "
          "other work on the machine makes every number worse)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "max": {n: vars(r) for n, r in best.items()},
            "half_rate": {n: vars(r) for n, r in half.items()},
            "ratio": ratio, "cpu_seconds": cpu,
            "targets_met": {"ratio": ok_ratio, "p99": ok_p99}}, indent=2))
    return 0
