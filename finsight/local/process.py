"""Start, probe and stop a background service with a pid file and a log file under `.local/`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service did not start or stop; the message points at its log."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    hint = f"; see {log}" if log else ""
    raise ServiceError(f"{what} not ready after {timeout:.0f}s{hint}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (OSError, IndexError):
        return "Z"


@dataclass(frozen=True)
class BackgroundService:
    """A process we launch detached (its own session) so `local down` can end its whole group."""

    name: str
    state_dir: Path
    port: int

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None and port_open(self.port)

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 60.0) -> bool:
        """Start unless already running; returns True when it started a new process."""
        if self.running():
            return False
        if port_open(self.port):
            raise ServiceError(f"{self.name}: port {self.port} is taken by another process (not ours)")
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        self.pidfile.write_text(str(proc.pid))

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with code {proc.returncode}; see {self.logfile}")
            return port_open(self.port)

        wait_until(ready, timeout, self.name, self.logfile)
        return True

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the process group; returns True when something was running."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return True
            try:
                wait_until(lambda: not pid_alive(pid), timeout if sig == signal.SIGTERM else 5, self.name)
                return True
            except ServiceError:
                continue
        raise ServiceError(f"{self.name} (pid {pid}) did not stop")
