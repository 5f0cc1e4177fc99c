"""A local host for Python v2-model Azure Functions apps (development and tests only).

The Python side is Azure's own runtime, ``azure-functions-runtime``: it indexes ``function_app.py`` and runs
every invocation. This package is the host around it: HTTP, queue (Azurite), timer and Web PubSub triggers.
See README.md in this folder for what is the real runtime and what is ours.
"""

from devstack.functions_host.host import RunningFunctionsHost, start_functions_host
from devstack.functions_host.indexing import IndexingError

__all__ = ["IndexingError", "RunningFunctionsHost", "start_functions_host"]
