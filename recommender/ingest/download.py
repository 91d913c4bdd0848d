"""Download Totara's export files (contract §4) with signed requests.

``GET {ML_TOTARA_URL}/pluginfile.php/1/ml_recommender/export/<file>``: 200 is the file, 202 means
the export is still being written (wait and ask again), 204 on tenants.csv means multi-tenancy is
off, 404 means a bad signature, an unknown file or the feature switched off.

Files are streamed to a temporary name next to their destination and renamed when complete, so
a reader never sees half a file. Every attempt is signed afresh: a signature is only valid for
30 seconds and the waits between attempts are longer than that.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
import urllib3

from recommender.ingest import export
from runtime.config import Settings
from runtime.errors import DownloadError, DownloadTooLarge, TransientDownloadError, quoted
from runtime.signing import signed_headers

log = logging.getLogger(__name__)

EXPORT_PATH = "/pluginfile.php/1/ml_recommender/export/"
CHUNK = 1 << 20
_WBITS = zlib.MAX_WBITS | 32  # a gzip or a zlib header, whichever the body starts with

Sleep = Callable[[float], None]


def _url(settings: Settings, name: str) -> str:
    if not settings.totara_url or not settings.totara_key:
        raise DownloadError("ML_TOTARA_URL and ML_TOTARA_KEY are needed to download the export")
    return settings.totara_url.rstrip("/") + EXPORT_PATH + name


def _status_error(name: str, status: int) -> DownloadError:
    if status == 404:
        return DownloadError(f"{name}: Totara answered 404 (bad or stale signature - check that "
                             "ML_TOTARA_KEY equals ml_service_key and the clocks agree -, "
                             "unknown file, or the recommender export is disabled)")
    # A server error may pass; any other answer means a wrong URL or set-up, which will not.
    kind = TransientDownloadError if status >= 500 else DownloadError
    return kind(f"{name}: Totara answered HTTP {status}")


def _too_large(name: str, limit: int, what: str) -> DownloadTooLarge:
    return DownloadTooLarge(f"{name}: larger than ML_DOWNLOAD_MAX_BYTES={limit:,} bytes ({what});"
                            " raise ML_DOWNLOAD_MAX_BYTES if the export really is this large")


def _inflate(name: str, raw: Iterator[bytes]) -> Iterator[bytes]:
    """Undo gzip or deflate ``Content-Encoding`` here, at most CHUNK bytes per step.

    Not left to requests: its transparent decoding gives no say over how much one read may
    inflate to, and a small body can inflate to gigabytes (a gzip stream may also hold any
    number of members, one after the other).
    """
    inflater, started = zlib.decompressobj(_WBITS), False
    try:
        for data in raw:
            while data:
                out = inflater.decompress(data, CHUNK)
                started = True
                if inflater.eof:  # a member ended; another may follow
                    data, started = inflater.unused_data, False
                    inflater = zlib.decompressobj(_WBITS)
                else:
                    data = inflater.unconsumed_tail
                if out:
                    yield out
            while started and not inflater.eof and (out := inflater.decompress(b"", CHUNK)):
                yield out
    except zlib.error as exc:
        raise TransientDownloadError(f"{name}: the compressed download is damaged ({exc})") \
            from None
    if started and not inflater.eof:
        raise TransientDownloadError(f"{name}: the compressed download stopped mid-stream")


def _body(response: requests.Response, name: str) -> Iterator[bytes]:
    """The file's bytes as they arrive, decompressed in bounded steps when they were sent so."""
    raw = response.raw.stream(CHUNK, decode_content=False)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate(name, raw)
    raise DownloadError(f"{name}: Totara sent the file with Content-Encoding {quoted(encoding)}, "
                        "which this service cannot read")


def _save(response: requests.Response, target: Path, limit: int) -> int:
    """Stream the body into ``target`` atomically, stopping past ``limit`` bytes; the number
    of bytes written."""
    expected = response.headers.get("Content-Length", "")
    identity = response.headers.get("Content-Encoding", "identity") == "identity"
    sized = expected.isascii() and expected.isdigit()
    if identity and sized and int(expected) > limit:  # refused before a byte is read
        raise _too_large(target.name, limit, f"Totara announced {int(expected):,} bytes")
    # A unique hidden name in the same folder: the rename is atomic and two downloads of the same
    # file (two workers) cannot mix their bytes.
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    partial = Path(name)
    written = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in _body(response, target.name):
                written += len(chunk)
                if written > limit:
                    raise _too_large(target.name, limit, f"stopped after {written:,} bytes")
                out.write(chunk)
        # Content-Length counts the bytes sent, which differ from ours when they were gzipped.
        if identity and sized and int(expected) != written:
            raise TransientDownloadError(f"{target.name}: the download stopped after {written} "
                                         f"of {expected} bytes")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _attempt(http: requests.Session, settings: Settings, url: str, name: str,
             dest: Path) -> bool | None:
    """One request: True when saved (200), False for no content (204), None for not ready (202)."""
    started = time.monotonic()
    try:
        # The key is only ever hashed into the headers, never logged or put in errors.
        with http.get(url, headers=signed_headers(settings.totara_key or ""), stream=True,
                      timeout=settings.download_timeout, allow_redirects=False) as response:
            if response.status_code == 200:
                size = _save(response, dest / name, settings.download_max_bytes)
                log.info("downloaded %s: %d bytes in %.1f s", name, size,
                         time.monotonic() - started)
                return True
            if response.status_code == 204:
                return False
            if response.status_code != 202:
                raise _status_error(name, response.status_code)
            return None
    # The body is read from urllib3 directly (_body), which raises its own errors.
    except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):
        raise TransientDownloadError(f"{name}: Totara did not answer within "
                                     f"{settings.download_timeout:g} s") from None
    except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError):
        raise TransientDownloadError(f"{name}: the connection broke during the "
                                     "download") from None
    except requests.RequestException as exc:
        # requests' messages hold the URL, the host and the cause: they go to this log only.
        # The error reaches the open status page, so it names the file and the kind of failure.
        log.warning("%s: could not download %s: %s", name, url, exc)
        raise TransientDownloadError(f"{name}: could not download from Totara "
                                     f"({type(exc).__name__}; details in the worker's "
                                     "log)") from None


def download_file(settings: Settings, name: str, dest: Path, *, sleep: Sleep = time.sleep,
                  session: requests.Session | None = None) -> bool:
    """Fetch one export file into ``dest/name``; False when Totara answered 204 (no content).

    202 is retried ``settings.download_retries`` times, ``settings.download_retry_delay``
    seconds apart. Anything else that is not 200 raises DownloadError.
    """
    url = _url(settings, name)
    dest.mkdir(parents=True, exist_ok=True)
    http = session or requests.Session()
    try:
        for attempt in range(settings.download_retries + 1):
            fetched = _attempt(http, settings, url, name, dest)
            if fetched is not None:
                return fetched
            if attempt < settings.download_retries:
                log.info("%s: Totara is still writing the export (202), asking again in %g s",
                         name, settings.download_retry_delay)
                sleep(settings.download_retry_delay)
    finally:
        if session is None:
            http.close()
    raise TransientDownloadError(f"{name}: the export was still not ready (202) after "
                                 f"{settings.download_retries} retries")


def fetch_tenants(settings: Settings, dest: Path, *, sleep: Sleep = time.sleep,
                  session: requests.Session | None = None) -> list[str]:
    """Download tenants.csv into ``dest`` and return its tenants; ["0"] when Totara says 204."""
    if not download_file(settings, export.TENANTS_FILE, dest, sleep=sleep, session=session):
        # No file means no multi-tenancy; a stale copy from an earlier run must not say otherwise.
        (dest / export.TENANTS_FILE).unlink(missing_ok=True)
        return ["0"]
    return export.read_tenants(dest)


def fetch_tenant(settings: Settings, tenant: str, dest: Path, *, sleep: Sleep = time.sleep,
                 session: requests.Session | None = None) -> None:
    """Download one tenant's three files into ``dest``, in the order Totara's own service uses."""
    if not (tenant.isascii() and tenant.isdigit()):  # it becomes part of a URL and file names
        raise DownloadError(f"tenant {quoted(tenant)} is not a whole number")
    for name in (export.interactions_file(tenant), export.users_file(tenant),
                 export.items_file(tenant)):
        if not download_file(settings, name, dest, sleep=sleep, session=session):
            raise DownloadError(f"{name}: Totara answered 204 (no content) for a data file")
