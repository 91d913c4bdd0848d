"""Configuration from ``ML_*`` environment variables (contract §3 plus this service's own).

Every value is checked once, at start: a bad one raises ``ConfigError`` whose text is one line
naming the variable, the value and what is accepted. ``load_or_exit`` turns that into exit 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runtime.errors import ConfigError

ALGORITHMS = ("hybrid", "partial", "mf")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
QUEUE_TYPES = ("classic", "quorum")
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
    metrics_port: int = 9102  # the worker's /metrics; 0 = off
    log_format: str = "text"  # text | json
    # classic | quorum: the type of the work queues on RabbitMQ (quorum for a RabbitMQ cluster)
    broker_queue_type: str = "classic"
    # Warm starts from the saved model allowed in a row before a full fit; 0 = always full
    incremental_runs: int = 6
    # The operator's explorer (/explore) and its HTTP Basic password; None = the explorer is off
    explorer_password: str | None = None

    @property
    def gunicorn_bind(self) -> list[str]:
        """``ML_BIND`` in gunicorn's syntax: waitress' ``*:5000`` means every interface."""
        return [("0.0.0.0" + b[1:]) if b.startswith("*:") else b for b in self.bind.split()]


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name}={raw!r}: expected a whole number from {low} to {high}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name}={raw!r}: expected a number from {low:g} to {high:g}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if raw == "":
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ConfigError(f"{name}={raw!r}: expected a URL starting with "
                          + " or ".join(f"{s}://" for s in schemes))
    return raw


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


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...],
            expected: str, case: Callable[[str], str] = str) -> str:
    value = case(env.get(name, "").strip() or default)
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: expected {expected}")
    return value


def _totara(env: Mapping[str, str], require_totara: bool) -> tuple[str | None, str]:
    """(ML_TOTARA_URL, ML_TOTARA_KEY); both must be set when ``require_totara``."""
    totara_url = _url(env, "ML_TOTARA_URL", ("http", "https"))
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
    algorithm = _choice(env, "ML_RECOMMENDATION_ALGORITHM", "hybrid", ALGORITHMS,
                        "one of " + ", ".join(ALGORITHMS))
    dev, bind = _dev_and_bind(env)
    export_dir = _export_dir(env)
    broker_prefix = _broker_prefix(env)
    log_level = _choice(env, "ML_LOG_LEVEL", "INFO", LOG_LEVELS, "DEBUG, INFO, WARNING or ERROR",
                        str.upper)
    queue_type = _choice(env, "ML_BROKER_QUEUE_TYPE", "classic", QUEUE_TYPES,
                         "classic or quorum", str.lower)
    log_format = _choice(env, "ML_LOG_FORMAT", "text", LOG_FORMATS, "text or json", str.lower)
    return Settings(
        totara_url=totara_url.rstrip("/") if totara_url else None,
        totara_key=totara_key or None,
        models_dir=Path(env.get("ML_MODELS_DIR", "").strip() or "data/models"),
        logs_dir=Path(env.get("ML_LOGS_DIR", "").strip() or "data/logs"),
        retrain_freq_minutes=_int(env, "ML_RECOMMENDATION_RETRAIN_FREQ", 1440, 1, 525600),
        num_threads=_int(env, "ML_NUM_THREADS", 4, 1, 256),
        algorithm=algorithm,
        dev=dev,
        bind=bind,
        redis_url=_url(env, "ML_REDIS_URL", ("redis", "rediss", "unix", "redis+cluster")),
        broker_url=_url(env, "ML_BROKER_URL",
                        ("amqp", "amqps", "pyamqp", "redis", "rediss", "redis+socket", "memory")),
        broker_prefix=broker_prefix,
        export_dir=export_dir,
        top_k=_int(env, "ML_TOP_K", 50, 1, 1000),
        download_retry_delay=_float(env, "ML_DOWNLOAD_RETRY_DELAY", 60.0, 0.0, 3600.0),
        download_retries=_int(env, "ML_DOWNLOAD_RETRIES", 3, 0, 100),
        download_timeout=_float(env, "ML_DOWNLOAD_TIMEOUT", 60.0, 0.1, 3600.0),
        publish_grace_seconds=_int(env, "ML_PUBLISH_GRACE", 300, 0, 86400),
        embedded_dir=Path(env.get("ML_EMBEDDED_DIR", "").strip() or "data/redis"),
        log_level=log_level,
        metrics_port=_int(env, "ML_METRICS_PORT", 9102, 0, 65535),
        log_format=log_format,
        broker_queue_type=queue_type,
        incremental_runs=_int(env, "ML_INCREMENTAL_RUNS", 6, 0, 1000),
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
