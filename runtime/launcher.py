"""Run a Procfile's processes in the foreground until Ctrl-C, then stop every one of them.

``python -m runtime.launcher [-f Procfile]`` is what ``deploy/demo.sh`` ends with. Each process
runs in its own session, so only this launcher receives the terminal's Ctrl-C; it then stops
each process's whole group (SIGTERM, SIGKILL after the grace) and, when the service runs on the
embedded Redis, shuts that server down too, saving its snapshot. Its output may go into a pipe
whose reader leaves (``| tee log`` dies with the same Ctrl-C): lines that cannot be written are
dropped, and the stopping goes on regardless.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

GRACE_SECONDS = 10.0  # gunicorn's graceful timeout and the worker's own stop fit in it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Entry:
    name: str
    command: str


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def read_procfile(path: Path) -> list[Entry]:
    """``name: command`` lines; blank lines and ``#`` comments are skipped."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"{path} line {number}: expected 'name: command'")
        entries.append(Entry(name.strip(), command.strip()))
    if not entries:
        raise ValueError(f"{path}: no processes")
    return entries


def exec_line(command: str) -> str:
    """``command`` run by ``exec``; leading ``NAME=value`` words, which ``exec`` would take for
    the program, go through ``env``."""
    return ("exec env " if _ASSIGNMENT.match(command) else "exec ") + command


class Output:
    """Prefixed lines on stdout; once the reader has gone, lines are dropped, never raised."""

    def __init__(self, stream: IO[str], width: int) -> None:
        self.stream, self.width = stream, width
        self.lock = threading.Lock()
        self.broken = False

    def line(self, name: str, text: str) -> None:
        with self.lock:
            if self.broken:
                return
            try:
                self.stream.write(f"{time.strftime('%H:%M:%S')} {name:<{self.width}} | {text}\n")
                self.stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.broken = True


class Launcher:
    def __init__(self, entries: Sequence[Entry], out: Output,
                 grace: float = GRACE_SECONDS) -> None:
        self.entries, self.out, self.grace = entries, out, grace
        self.processes: dict[str, subprocess.Popen] = {}
        self.stop = threading.Event()
        self.signals = 0
        self.ended: str | None = None  # the first process that ended by itself

    def on_signal(self, signum: int, frame: object) -> None:
        self.signals += 1
        if self.signals > 1:  # asked twice: no more waiting
            self._signal_all(signal.SIGKILL)
        self.stop.set()

    def start(self) -> None:
        for entry in self.entries:
            # exec: the process is the command itself, not a shell waiting for it; the name as
            # honcho gives it, which the Procfile reads (its instance number).
            process = subprocess.Popen(
                exec_line(entry.command), shell=True, start_new_session=True,
                env={**os.environ, "HONCHO_PROCESS_NAME": f"{entry.name}.1"},
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace")
            self.processes[entry.name] = process
            self.out.line("system", f"{entry.name} started (pid {process.pid})")
            threading.Thread(target=self._relay, args=(entry.name, process), daemon=True).start()

    def _relay(self, name: str, process: subprocess.Popen) -> None:
        for text in process.stdout:  # read to the end, written or not: a full pipe would block
            self.out.line(name, text.rstrip("\n"))
        if not self.stop.is_set():
            self.ended = name
        self.stop.set()  # one process ended: the others stop too, as with honcho

    def wait(self) -> str | None:
        """Until a signal or the end of a process; returns the name of a process that ended."""
        while not self.stop.wait(0.2):
            pass
        return None if self.signals else self.ended

    def _signal_all(self, signum: int) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signum)  # the process and whatever it started
            except (ProcessLookupError, PermissionError):
                pass

    def terminate(self) -> None:
        """SIGTERM to every group, SIGKILL to what is left after the grace."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and self._running():
            time.sleep(0.1)
        if self._running():
            self.out.line("system", f"still running after {self.grace:.0f} s: killing")
        # Even when the leader has exited, what it started may linger in its group.
        self._signal_all(signal.SIGKILL)
        for process in self.processes.values():
            process.wait()

    def _running(self) -> bool:
        return any(process.poll() is None for process in self.processes.values())


def embedded_redis_dir() -> Path | None:
    """The embedded Redis's folder when the settings use it; None with an external Redis."""
    from runtime.config import from_env
    from runtime.errors import ConfigError

    try:
        settings = from_env(require_totara=False)
    except ConfigError:
        return None  # the processes say what is wrong; nothing of ours to stop
    return None if settings.redis_url else settings.embedded_dir


def stop_embedded_redis(out: Output) -> None:
    """Shut the embedded Redis down (it writes its snapshot) when it is the one in use."""
    from runtime.redisconn import stop_embedded

    directory = embedded_redis_dir()
    if directory is not None and stop_embedded(directory):
        out.line("system", f"embedded Redis stopped, data saved in {directory}")


def run(procfiles: Sequence[Path], grace: float = GRACE_SECONDS) -> int:
    out = Output(sys.stdout, 6)
    try:
        entries = [entry for path in procfiles for entry in read_procfile(path)]
        names = [entry.name for entry in entries]
        if len(set(names)) < len(names):
            raise ValueError(f"a process name is given twice: {', '.join(names)}")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.width = max(out.width, *(len(e.name) for e in entries))
    launcher = Launcher(entries, out, grace)
    for signum in STOP_SIGNALS:
        signal.signal(signum, launcher.on_signal)
    names = [e.name for e in entries] + (["the embedded Redis"] if embedded_redis_dir() else [])
    out.line("system", "Ctrl-C stops " + ", ".join(names[:-1]) + " and " + names[-1]
             if len(names) > 1 else "Ctrl-C stops " + names[0])
    launcher.start()
    ended = launcher.wait()
    out.line("system", f"{ended} ended: stopping the others" if ended else "stopping")
    launcher.terminate()
    stop_embedded_redis(out)
    out.line("system", "stopped")
    return 1 if ended else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.launcher", description=__doc__)
    parser.add_argument("-f", "--procfile", type=Path, action="append",
                        help="a Procfile (repeatable: their processes add up; default Procfile)")
    parser.add_argument("--grace", type=float, default=GRACE_SECONDS,
                        help="seconds each process has to stop before it is killed")
    parser.add_argument("--stop-embedded-redis", action="store_true",
                        help="only stop the embedded Redis (the demo's Ctrl-C while training)")
    args = parser.parse_args(argv)
    if args.stop_embedded_redis:
        stop_embedded_redis(Output(sys.stdout, 6))
        return 0
    return run(args.procfile or [Path("Procfile")], args.grace)


if __name__ == "__main__":
    sys.exit(main())
