"""Configuration from ``ML_*`` environment variables (contract §3 plus this service's own).

Every value is checked once, at start: a bad one raises ``ConfigError`` whose text is one line
naming the variable, the value and what is accepted. ``load_or_exit`` turns that into exit 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runtime.envparse import number, on_off, one_of, url, whole_number
from runtime.errors import ConfigError
from runtime.schedule import Schedule, parse_spread, parse_time_of_day

ALGORITHMS = ("hybrid", "partial", "mf")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
QUEUE_TYPES = ("classic", "quorum")
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", "redis", "rediss", "redis+socket", "memory")
_BROKER_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# A shorter shared secret can be guessed offline from one captured signature (sha256(time + key)).
MIN_KEY_LENGTH = 16
# Set once the start-up warnings were printed, so forked or re-reading processes stay quiet.
_WARNED_MARKER = "_ML_CONFIG_WARNED"


@dataclass(frozen=True)
class Settings:
    totara_url: str | None
    totara_key: str | None
    models_dir: Path
    logs_dir: Path
    retrain_freq_minutes: int
    num_threads: int
    algorithm: str
    dev: bool
    bind: str
    redis_url: str | None  # None: the embedded server (see runtime.redisconn)
    broker_url: str | None  # None: the same Redis as redis_url
    broker_prefix: str  # names of the exchange and queues (docs/events.md)
    export_dir: Path | None
    top_k: int
    download_retry_delay: float
    download_retries: int
    download_timeout: float
    publish_grace_seconds: int
    embedded_dir: Path
    log_level: str
    # Defaults here too: callers that build Settings by hand need not know the newer fields.
    # The worker's /metrics: ML_METRICS_PORT + ML_WORKER_INSTANCE - 1 (0 = off), on metrics_host
    metrics_port: int = 9102
    log_format: str = "text"  # text | json
    # classic | quorum: the type of the work queues on RabbitMQ (quorum for a RabbitMQ cluster)
    broker_queue_type: str = "classic"
    # Warm starts from the saved model allowed in a row before a full fit; 0 = always full
    incremental_runs: int = 6
    # The retrain timer (runtime.schedule): periods start at this many seconds after 00:00 UTC,
    # and the tenants' runs are spread over this many seconds after each start.
    retrain_at_seconds: int = 0
    retrain_spread_seconds: int = 0
    # Seconds a worker told to stop waits for the training in hand before handing it back;
    # the recipes give the process manager's own stop timeout a margin beyond it.
    worker_stop_grace: float = 8.0
    metrics_host: str = "127.0.0.1"
    access_log: bool = True  # one log line per API request (ML_ACCESS_LOG=0: none)
    # Deliveries of one message without an ack before it is dead-lettered (a crash loop ends)
    max_deliveries: int = 5
    # Largest export file a download may write (bytes, after decompression)
    download_max_bytes: int = 2 << 30
    # The operator's explorer (/explore) and its HTTP Basic password; None = the explorer is off
    explorer_password: str | None = None

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.retrain_freq_minutes * 60, self.retrain_at_seconds,
                        self.retrain_spread_seconds)

    @property
    def gunicorn_bind(self) -> list[str]:
        """``ML_BIND`` in gunicorn's syntax: waitress' ``*:5000`` means every interface."""
        return [("0.0.0.0" + b[1:]) if b.startswith("*:") else b for b in self.bind.split()]


def _broker_url(env: Mapping[str, str]) -> str | None:
    """``ML_BROKER_URL``: a URL, or several of one kind separated by ``;``: kombu's failover
    alternates, so a worker that loses its RabbitMQ node connects to the next one."""
    raw = env.get("ML_BROKER_URL", "").strip()
    if raw == "":
        return None
    urls = [part.strip() for part in raw.split(";")]
    parts = [urlsplit(url) for url in urls]
    if any(p.scheme not in BROKER_SCHEMES or not (p.netloc or p.path)
           or p.scheme != parts[0].scheme for p in parts):
        raise ConfigError(f"ML_BROKER_URL={raw!r}: expected a URL starting with "
                          + " or ".join(f"{s}://" for s in BROKER_SCHEMES)
                          + ", or several of one kind separated by ;")
    return ";".join(urls)


def _bind(raw: str) -> str:
    for address in raw.split():
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"ML_BIND={raw!r}: expected HOST:PORT such as *:5000, "
                              "127.0.0.1:5000 or [::1]:5000")
    if not raw.split():
        raise ConfigError("ML_BIND='': expected HOST:PORT such as *:5000")
    return " ".join(raw.split())


def _loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", a host name: may be reachable from elsewhere
        return False


def _check_dev_bind(dev: bool, bind: str, env: Mapping[str, str]) -> None:
    """Development mode puts exception details in answers: only on loopback unless forced."""
    allow = env.get("ML_DEV_ALLOW_REMOTE", "").strip()
    if allow not in ("", "0", "1"):
        raise ConfigError(f"ML_DEV_ALLOW_REMOTE={allow!r}: expected 1 or unset")
    remote = [a for a in bind.split() if not _loopback(a)]
    if dev and remote and allow != "1":
        raise ConfigError(f"ML_DEV=1 with ML_BIND={bind!r}: development mode shows error "
                          "details, so it listens on loopback only (ML_BIND=127.0.0.1:5000); "
                          "set ML_DEV_ALLOW_REMOTE=1 to force it")


def start_warnings(settings: Settings) -> list[str]:
    """Weak but accepted settings, one line each; never containing the key itself."""
    problems = []
    key = settings.totara_key or ""
    if key and len(key) < MIN_KEY_LENGTH:
        problems.append(f"ML_TOTARA_KEY is {len(key)} characters long; use at least "
                        f"{MIN_KEY_LENGTH} random characters (Totara's ml_service_key too)")
    return problems


def _totara(env: Mapping[str, str], require_totara: bool) -> tuple[str | None, str]:
    """(ML_TOTARA_URL, ML_TOTARA_KEY); both must be set when ``require_totara``."""
    totara_url = url(env, "ML_TOTARA_URL", ("http", "https"))
    totara_key = env.get("ML_TOTARA_KEY", "")
    if require_totara:
        if totara_url is None:
            raise ConfigError("ML_TOTARA_URL is not set: expected the base URL of the Totara "
                              "site, such as https://lms.example.com")
        if totara_key.strip() == "":
            raise ConfigError("ML_TOTARA_KEY is not set: expected the shared secret that is "
                              "also Totara's ml_service_key")
    return totara_url, totara_key


def _dev_and_bind(env: Mapping[str, str]) -> tuple[bool, str]:
    """(ML_DEV, ML_BIND), checked together: development mode listens on loopback only."""
    dev_raw = env.get("ML_DEV", "").strip()
    if dev_raw not in ("", "0", "1"):
        raise ConfigError(f"ML_DEV={dev_raw!r}: expected 1 (development mode) or unset")
    bind = _bind(env.get("ML_BIND", "*:5000"))
    _check_dev_bind(dev_raw == "1", bind, env)
    return dev_raw == "1", bind


def _export_dir(env: Mapping[str, str]) -> Path | None:
    export_dir = env.get("ML_EXPORT_DIR", "").strip()
    if export_dir and not Path(export_dir).is_dir():
        raise ConfigError(f"ML_EXPORT_DIR={export_dir!r}: expected an existing folder")
    return Path(export_dir) if export_dir else None


def _broker_prefix(env: Mapping[str, str]) -> str:
    broker_prefix = env.get("ML_BROKER_PREFIX", "").strip() or "totara_ml"
    if not _BROKER_PREFIX.fullmatch(broker_prefix):
        raise ConfigError(f"ML_BROKER_PREFIX={broker_prefix!r}: expected letters, digits and "
                          "_.- only")
    return broker_prefix


def _retrain_timer(env: Mapping[str, str]) -> tuple[int, int, int]:
    """(minutes between retrains, their time of day and their spread in seconds)."""
    minutes = whole_number(env, "ML_RECOMMENDATION_RETRAIN_FREQ", 1440, 1, 525600)
    at = parse_time_of_day("ML_RETRAIN_AT", env.get("ML_RETRAIN_AT", ""))
    spread = parse_spread("ML_RETRAIN_SPREAD", env.get("ML_RETRAIN_SPREAD", ""), minutes * 60)
    return minutes, at, spread


def _worker_metrics(env: Mapping[str, str]) -> tuple[int, str]:
    """(port, address) of a worker's /metrics: one fixed port per instance, so that Prometheus
    finds each worker of a host where its configuration says (no hunting for a free port)."""
    base = whole_number(env, "ML_METRICS_PORT", 9102, 0, 65535)
    instance = whole_number(env, "ML_WORKER_INSTANCE", 1, 1, 65535)
    host = env.get("ML_WORKER_METRICS_HOST", "").strip() or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"ML_WORKER_METRICS_HOST={host!r}: expected an IP address of this "
                          "host, such as 127.0.0.1 (the default) or 0.0.0.0 (every "
                          "interface)") from None
    port = base + instance - 1 if base else 0
    if port > 65535:
        raise ConfigError(f"ML_WORKER_INSTANCE={instance} with ML_METRICS_PORT={base}: the "
                          f"metrics port would be {port} (ML_METRICS_PORT + ML_WORKER_INSTANCE "
                          "- 1); expected at most 65535: lower ML_METRICS_PORT")
    return port, host


def _explorer_password(env: Mapping[str, str]) -> str | None:
    """ML_EXPLORER_PASSWORD: user-level data is behind it, so a short one is refused."""
    password = env.get("ML_EXPLORER_PASSWORD", "")
    if password == "":
        return None
    if len(password) < MIN_KEY_LENGTH:
        raise ConfigError(f"ML_EXPLORER_PASSWORD is {len(password)} characters long: expected "
                          f"at least {MIN_KEY_LENGTH} characters, or unset to turn the explorer "
                          "off")
    return password


def from_env(env: Mapping[str, str] | None = None, *, require_totara: bool = True) -> Settings:
    """Read and check every variable; ``require_totara`` for the API, the worker and downloads."""
    env = os.environ if env is None else env
    totara_url, totara_key = _totara(env, require_totara)
    algorithm = one_of(env, "ML_RECOMMENDATION_ALGORITHM", "hybrid", ALGORITHMS,
                        "one of " + ", ".join(ALGORITHMS))
    dev, bind = _dev_and_bind(env)
    export_dir = _export_dir(env)
    broker_prefix = _broker_prefix(env)
    log_level = one_of(env, "ML_LOG_LEVEL", "INFO", LOG_LEVELS, "DEBUG, INFO, WARNING or ERROR",
                        str.upper)
    queue_type = one_of(env, "ML_BROKER_QUEUE_TYPE", "classic", QUEUE_TYPES,
                         "classic or quorum", str.lower)
    log_format = one_of(env, "ML_LOG_FORMAT", "text", LOG_FORMATS, "text or json", str.lower)
    retrain_freq, retrain_at, retrain_spread = _retrain_timer(env)
    metrics_port, metrics_host = _worker_metrics(env)
    return Settings(
        totara_url=totara_url.rstrip("/") if totara_url else None,
        totara_key=totara_key or None,
        models_dir=Path(env.get("ML_MODELS_DIR", "").strip() or "data/models"),
        logs_dir=Path(env.get("ML_LOGS_DIR", "").strip() or "data/logs"),
        retrain_freq_minutes=retrain_freq,
        num_threads=whole_number(env, "ML_NUM_THREADS", 4, 1, 256),
        algorithm=algorithm,
        dev=dev,
        bind=bind,
        redis_url=url(env, "ML_REDIS_URL", ("redis", "rediss", "unix", "redis+cluster")),
        broker_url=_broker_url(env),
        broker_prefix=broker_prefix,
        export_dir=export_dir,
        top_k=whole_number(env, "ML_TOP_K", 50, 1, 1000),
        download_retry_delay=number(env, "ML_DOWNLOAD_RETRY_DELAY", 60.0, 0.0, 3600.0),
        download_retries=whole_number(env, "ML_DOWNLOAD_RETRIES", 3, 0, 100),
        download_timeout=number(env, "ML_DOWNLOAD_TIMEOUT", 60.0, 0.1, 3600.0),
        publish_grace_seconds=whole_number(env, "ML_PUBLISH_GRACE", 300, 0, 86400),
        embedded_dir=Path(env.get("ML_EMBEDDED_DIR", "").strip() or "data/redis"),
        log_level=log_level,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        access_log=on_off(env, "ML_ACCESS_LOG", True),
        log_format=log_format,
        broker_queue_type=queue_type,
        incremental_runs=whole_number(env, "ML_INCREMENTAL_RUNS", 6, 0, 1000),
        retrain_at_seconds=retrain_at,
        retrain_spread_seconds=retrain_spread,
        worker_stop_grace=number(env, "ML_WORKER_STOP_GRACE", 8.0, 0.0, 86400.0),
        max_deliveries=whole_number(env, "ML_MAX_DELIVERIES", 5, 1, 1000),
        download_max_bytes=whole_number(env, "ML_DOWNLOAD_MAX_BYTES", 2 << 30, 1024, 1 << 40),
        explorer_password=_explorer_password(env),
    )


def load_or_exit(*, require_totara: bool = True) -> Settings:
    """``from_env`` for entry points: a bad value ends the program with one line and status 2."""
    try:
        settings = from_env(require_totara=require_totara)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # Once per process tree: gunicorn's master reads the settings, then each worker again.
    if not os.environ.get(_WARNED_MARKER):
        for line in start_warnings(settings):
            print(f"configuration warning: {line}", file=sys.stderr)
        os.environ[_WARNED_MARKER] = "1"
    return settings
