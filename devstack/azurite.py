"""Start and stop Azurite, the official Azure Storage emulator, installed from npm (package.json).

``start_azurite()`` runs it on free (or given) ports, in memory for tests or with a data folder for
local runs, waits until every service answers and returns its connection string.

Free ports are picked by Azurite itself (port 0) and read from its "successfully listening at" lines, so
parallel test runs cannot race for a port between choosing it and binding it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("Blob", "Queue", "Table")
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at https?://[^\s]+:(\d+)")
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft); it only works locally.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteNotInstalled(RuntimeError):
    """Azurite's npm package is missing; ``make dev`` / ``make test`` install it (npm ci)."""


def connection_string(
    host: str, blob_port: int, queue_port: int, table_port: int, scheme: str = "http"
) -> str:
    """The storage connection string for an Azurite listening on the given ports."""
    return (
        f"DefaultEndpointsProtocol={scheme};"
        f"AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={scheme}://{host}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint={scheme}://{host}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint={scheme}://{host}:{table_port}/{ACCOUNT_NAME};"
    )


def azurite_executable() -> Path:
    """Path of the pinned Azurite launcher in node_modules; raise AzuriteNotInstalled if absent."""
    path = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not path.exists():
        raise AzuriteNotInstalled(
            f"{path} not found: run `make deps` (or `npm ci`) to install the pinned Azurite"
        )
    return path


@dataclass
class RunningAzurite:
    """A running Azurite process and the ports of its blob, queue and table services."""

    process: subprocess.Popen[bytes]
    host: str
    blob_port: int
    queue_port: int
    table_port: int
    location: Path
    _temporary_location: bool = False
    https: bool = False

    @property
    def connection_string(self) -> str:
        """Connection string for the SDKs and the Functions host (``AzureWebJobsStorage``)."""
        scheme = "https" if self.https else "http"
        return connection_string(self.host, self.blob_port, self.queue_port, self.table_port, scheme)

    @property
    def queue_endpoint(self) -> str:
        """The queue service URL (``.../devstoreaccount1``)."""
        return f"{'https' if self.https else 'http'}://{self.host}:{self.queue_port}/{ACCOUNT_NAME}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite and everything it started; remove its temporary folder."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
            except ProcessLookupError:
                pass
        if self._temporary_location:
            shutil.rmtree(self.location, ignore_errors=True)


def start_azurite(
    host: str = "127.0.0.1",
    blob_port: int = 0,
    queue_port: int = 0,
    table_port: int = 0,
    location: Path | None = None,
    in_memory: bool = True,
    log_file: Path | None = None,
    timeout: float = 60.0,
    certificate: tuple[Path, Path] | None = None,
    oauth: bool = False,
) -> RunningAzurite:
    """Start Azurite on the given ports (0 = a free port) and wait until all three services answer.

    ``in_memory`` keeps data in memory (tests); otherwise data lives in ``location`` (local runs).
    ``certificate`` (cert and key PEM files) serves HTTPS; ``oauth`` then also accepts bearer tokens
    (``--oauth basic``: format, lifetime, issuer and audience are checked, not the signature).
    Raises AzuriteNotInstalled, or RuntimeError/TimeoutError when it does not come up.
    """
    executable = azurite_executable()
    ports = [blob_port, queue_port, table_port]
    temporary = location is None
    folder = Path(tempfile.mkdtemp(prefix="azurite-")) if location is None else location
    folder.mkdir(parents=True, exist_ok=True)
    args = [
        str(executable),
        "--blobHost", host, "--blobPort", str(ports[0]),
        "--queueHost", host, "--queuePort", str(ports[1]),
        "--tableHost", host, "--tablePort", str(ports[2]),
        "--skipApiVersionCheck",
        "--disableProductStyleUrl",
        "--disableTelemetry",  # else it posts usage data to Azure Application Insights
    ]
    if certificate is not None:
        args += ["--cert", str(certificate[0]), "--key", str(certificate[1])]
    if oauth:
        if certificate is None:
            raise ValueError("Azurite accepts OAuth only over HTTPS: pass a certificate")
        args += ["--oauth", "basic"]
    # Azurite refuses --location together with --inMemoryPersistence.
    args += ["--inMemoryPersistence"] if in_memory else ["--location", str(folder)]
    if log_file is None:
        args.append("--silent")
    else:
        args += ["--debug", str(log_file)]
    process = subprocess.Popen(
        args,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() also ends node's children
    )
    running = RunningAzurite(
        process, host, ports[0], ports[1], ports[2], folder, temporary, https=certificate is not None
    )
    try:
        running.blob_port, running.queue_port, running.table_port = _wait_until_listening(process, timeout)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_until_listening(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, int, int]:
    """Read Azurite's output until each service says where it listens; keep draining it afterwards.

    Its own lines are the readiness signal: a port that answers could belong to another process, and a
    service that cannot bind (EADDRINUSE) makes Azurite exit, which ends the output at once.
    """
    assert process.stdout is not None
    stdout = process.stdout
    listening: dict[str, int] = {}
    tail: deque[str] = deque(maxlen=20)
    ready = threading.Event()

    def read() -> None:
        for raw in stdout:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            if not ready.is_set() and (match := _LISTENING.search(line)):
                listening[match.group(1)] = int(match.group(2))
                if len(listening) == len(SERVICES):
                    ready.set()
        ready.set()  # end of output: Azurite exited

    threading.Thread(target=read, name="azurite-output", daemon=True).start()
    if not ready.wait(timeout):
        output = " | ".join(tail)
        raise TimeoutError(f"Azurite did not listen on all its ports within {timeout:.0f} s: {output}")
    if len(listening) < len(SERVICES):
        process.wait(5)
        raise RuntimeError(f"Azurite exited with code {process.returncode}: {' | '.join(tail)}")
    return listening["Blob"], listening["Queue"], listening["Table"]
