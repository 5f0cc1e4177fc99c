"""Run the host as a child process (end-to-end tests that stop and restart it mid-stream)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

READY_PREFIX = "functions host ready: "
REPO_ROOT = Path(__file__).resolve().parents[2]


class FunctionsHostStartError(RuntimeError):
    """The host process exited before its ready line; the message ends with its last stderr lines."""


class FunctionsHostProcess:
    """A ``python -m devstack.functions_host`` child; its stderr log is collected in :attr:`log_lines`."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.log_lines: list[str] = []
        self._reader = threading.Thread(target=self._read_log, name="functions-host-log", daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log_lines.append(line.rstrip("\n"))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (in-flight work drains, then is released); kill after ``timeout``; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()
        return int(self.process.returncode)

    def kill(self) -> int:
        """SIGKILL, like a crash: in-flight queue messages stay invisible until their visibility expires."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()
        return int(self.process.returncode)

    def _close(self) -> None:
        self._reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def start_functions_host_process(
    app_dir: str | Path,
    port: int | None = 0,
    env: Mapping[str, str] | None = None,
    settings_file: str | Path | None = None,
    drain_timeout: float | None = None,
    startup_timeout: float = 60.0,
    cors: str | None = None,
) -> FunctionsHostProcess:
    """Start the host in a child process and wait for its ready line; FunctionsHostStartError if it does not.

    ``port=0`` binds a free port (see ``.url``/``.port``); ``None`` uses ``Host.LocalHttpPort`` or 7071.
    ``env`` is added to this process's environment (it wins over local.settings.json, as with ``func start``).
    ``cors`` (comma-separated origins) overrides the settings file's ``Host.CORS``.
    """
    command = [sys.executable, "-m", "devstack.functions_host", "--app-dir", str(app_dir)]
    if port is not None:
        command += ["--port", str(port)]
    if settings_file is not None:
        command += ["--settings", str(settings_file)]
    if drain_timeout is not None:
        command += ["--drain-timeout", str(drain_timeout)]
    if cors is not None:
        command += ["--cors", cors]
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {}), "PYTHONPATH": python_path},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(process.stdout.readline() if process.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(startup_timeout)
    line = first_line[0] if first_line else ""
    if not line.startswith(READY_PREFIX):
        process.kill()
        _, errors = process.communicate()
        raise FunctionsHostStartError(
            f"functions host did not start (exit {process.returncode}): {errors.strip()[-2000:]}"
        )
    return FunctionsHostProcess(process, line[len(READY_PREFIX) :].strip())
