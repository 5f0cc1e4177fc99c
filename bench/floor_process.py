"""The benchmark's side of a floor child process: start it, read its ready line, stop it, read its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

from bench.floor_base import READY_PREFIX
from devstack.stack import REPO_ROOT

MODULES = {"guarantee": "bench.guarantee_floor", "presence": "bench.presence_floor"}


class FloorProcess:
    """A running ``python -m bench.<kind>_floor``; :attr:`webhook_port` is 0 for the presence floor."""

    def __init__(
        self,
        kind: str,
        environ: Mapping[str, str],
        queue: str,
        deadlines: str | None = None,
        ack_timeout: int | None = None,
        queue_options: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> None:
        command = [sys.executable, "-m", MODULES[kind], "--queue", queue]
        if kind == "guarantee":
            if deadlines is None or ack_timeout is None:
                raise ValueError("the guarantee floor needs a deadlines queue and an ack timeout")
            command += ["--deadlines", deadlines, "--ack-timeout", str(ack_timeout)]
        for name, value in (queue_options or {}).items():
            command += [f"--{name}", value]
        self.kind = kind
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        self.webhook_port = 0
        if wait:
            self.wait_ready()

    def wait_ready(self) -> FloorProcess:
        """Wait for the ready line (it names the webhook port); RuntimeError if the process did not start."""
        line = self._read_line(60.0)
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError(f"the {self.kind} floor process did not start (it printed {line!r})")
        self.webhook_port = int(line.split()[-1])
        return self

    @property
    def pid(self) -> int:
        """The process id (for its CPU time)."""
        return self.process.pid

    def stop(self) -> dict[str, Any]:
        """Close its stdin (it stops polling and finishes what is in flight); return its JSON result line."""
        result: dict[str, Any] = {}
        try:
            if self.process.stdin is not None and not self.process.stdin.closed:
                self.process.stdin.close()
            line = self._read_line(60.0)
            result = json.loads(line) if line else {}
            self.process.wait(10)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
        return result

    def _read_line(self, timeout: float) -> str:
        lines: list[str] = []

        def read() -> None:
            stream = self.process.stdout
            lines.append(stream.readline() if stream is not None else "")

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        return lines[0].strip() if lines else ""
