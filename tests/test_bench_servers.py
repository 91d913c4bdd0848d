"""Benchmark helpers: the CPU accounting bench api prints per request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bench.servers import cpu_seconds


def test_cpu_seconds_counts_the_descendants_of_a_process():
    # Given a child that burns about half a second of CPU, then idles
    burner = ("import time\nend = time.process_time() + 0.5\n"
              "while time.process_time() < end: pass\ntime.sleep(5)\n")
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', "
                               f"{burner!r}])"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        spent = 0.0
        while time.monotonic() < deadline and spent < 0.4:
            time.sleep(0.1)
            spent = cpu_seconds(parent.pid)
        # Then the parent's tree shows the grandchild's CPU, and a gone process counts as 0
        assert 0.4 <= spent < 3.0
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the grandchild too
        parent.wait()
    assert cpu_seconds(parent.pid) == 0.0
