"""Drive an HTTP server with wrk: Totara-signed /user-items requests spread over many users."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.signing import signed_headers

# The types Totara's own pages ask for (contract §2).
ITEM_TYPES = ("container_course", "engage_microlearning", "container_workspace")

_SCRIPT = """
local ids = {%(ids)s}
local types = {%(types)s}
local delay_ms = %(delay)d
failures = 0  -- a global: done() reads it from each thread
local threads = {}
wrk.headers["X-Totara-Time"] = "%(time)s"
wrk.headers["X-Totara-Ml-Key"] = "%(key)s"
wrk.headers["User-Agent"] = "%(agent)s"
wrk.headers["Connection"] = "%(connection)s"

function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed * 7919)
end

function request()
  local uid = ids[math.random(#ids)]
  local kind = types[math.random(#types)]
  return wrk.format("GET", "/user-items?totara_user_id=" .. uid .. "&item_type=" .. kind
                    .. "&tenant=0&n_items=%(n_items)d")
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"success": true', 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failures") end
  io.write(string.format("BENCH p50=%%d p99=%%d failures=%%d\\n",
                         latency:percentile(50), latency:percentile(99), total))
end
"""


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    failures: int
    requests: int


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, key: str, user_ids: list[int], seconds: float, connections: int,
        threads: int, script_dir: Path, delay_ms: int = 0, n_items: int = 25,
        connection: str = "close") -> Result:
    """One wrk run; the signature is made just before it, so runs must stay under 30 s."""
    headers = signed_headers(key, time.time())
    script = script_dir / "user_items.lua"
    script.write_text(_SCRIPT % {
        "ids": ",".join(str(u) for u in user_ids),
        "types": ",".join(f'"{t}"' for t in ITEM_TYPES),
        "delay": delay_ms, "time": headers["X-Totara-Time"], "key": headers["X-Totara-Ml-Key"],
        "agent": headers["User-Agent"], "connection": connection, "n_items": n_items})
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
               "--timeout", "2s", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or "BENCH" not in done.stdout:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    found = re.search(r"BENCH p50=(\d+) p99=(\d+) failures=(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    failures = int(found.group(3))  # non-200 statuses and failure envelopes
    if socket_errors:
        failures += sum(int(g) for g in socket_errors.groups())
    return Result(rate, int(found.group(1)) / 1000, int(found.group(2)) / 1000, failures, total)
