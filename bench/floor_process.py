"""The benchmark's side of a floor child process: start it, read its ready line, stop it, read its result.

:class:`FloorProcess` runs a bare floor (``python -m bench.<kind>_floor``); :class:`HostedFloor` runs the
guarantee floor as a Functions app (``bench/hosted_floor/``) in the local Functions host, like the notifier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

from bench.floor_base import READY_PREFIX
from devstack.functions_host.process import start_functions_host_process
from devstack.stack import REPO_ROOT

MODULES = {"guarantee": "bench.guarantee_floor", "presence": "bench.presence_floor"}
HOSTED_FLOOR_APP = REPO_ROOT / "bench" / "hosted_floor"
HOSTED_FLOOR_SETTINGS = HOSTED_FLOOR_APP / "floor.settings.json"


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


class HostedFloor:
    """The guarantee floor's Functions app in a local Functions host process, reading ``queue``.

    ``environ`` holds the floor's ``BENCH_*`` settings (:func:`bench.floor_base.floor_environment`) and the
    host's: ``AzureWebJobsStorage``, ``WebPubSubConnectionString``, ``WebPubSubHub`` and any
    ``AzureFunctionsJobHost__...`` override. Web PubSub ``ack`` events are served on :attr:`webhook_port`
    (the host's port, ``/runtime/webhooks/webpubsub``).
    """

    kind = "hosted"

    def __init__(self, environ: Mapping[str, str], queue: str, deadlines: str, ack_timeout: int) -> None:
        env = {**environ, "BENCH_QUEUE": queue, "BENCH_DEADLINES": deadlines,
               "BENCH_ACK_TIMEOUT": str(ack_timeout)}
        self.host = start_functions_host_process(HOSTED_FLOOR_APP, port=0, env=env,
                                                 settings_file=HOSTED_FLOOR_SETTINGS)

    @property
    def pid(self) -> int:
        """The host's process id (for its CPU time)."""
        return self.host.process.pid

    @property
    def webhook_port(self) -> int:
        """The host's port, where it serves the Web PubSub webhook."""
        return self.host.port

    def stop(self) -> dict[str, Any]:
        """SIGTERM (in-flight invocations drain); return the failed invocations, as a floor's result line."""
        self.host.stop()
        error_types: dict[str, int] = {}
        for line in self.host.log_lines:
            if line.startswith("Exception: "):  # the line after a failed invocation's "Result: Failure"
                name = line[len("Exception: "):].split(":", 1)[0].strip()
                error_types[name] = error_types.get(name, 0) + 1
        failed = sum(1 for line in self.host.log_lines if "(Failed," in line)
        return {"errors": failed, "error_types": error_types}
