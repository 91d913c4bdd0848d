"""The status page in a real browser: Debian's Chromium, headless, renders it from a server on
a loopback port; the test saves a screenshot and checks the tenant rows of the rendered DOM.

Skipped when Chromium is absent locally; under CI (``CI`` set) it must run: .ci/run installs
Debian's ``chromium`` package when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from test_api_status_page import seed

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT_DIR = ROOT / "data" / "screenshots"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
def served_page(api):
    seed(api.redis)
    server = make_server("127.0.0.1", 0, api.app, server_class=_Server,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def _headless(chromium: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
               "--window-size=1280,900", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def test_chromium_renders_the_tenant_rows_and_a_screenshot(chromium, served_page, tmp_path):
    screenshot = SCREENSHOT_DIR / "status-page.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    shot = _headless(chromium, tmp_path / "profile-shot", f"--screenshot={screenshot}",
                     served_page)
    assert screenshot.is_file(), shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one

    dom = _headless(chromium, tmp_path / "profile-dom", "--dump-dom", served_page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rows = re.findall(r'<tr class="tenant" data-tenant="(\d+)">(.*?)</tr>', dom.stdout, re.S)
    assert [tenant for tenant, _ in rows] == ["0", "3", "4"]
    cells = {tenant: re.findall(r"<td[^>]*>(.*?)</td>", body, re.S) for tenant, body in rows}
    assert cells["0"][1:3] == ["trained", "hybrid"]
    assert cells["4"][1] == "not_trained"
    assert "failed" in cells["3"][-1]
    assert "Next scheduled retrain" in dom.stdout
