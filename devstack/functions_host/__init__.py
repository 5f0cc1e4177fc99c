"""A local host for Python v2-model Azure Functions apps (development and tests only).

It indexes ``function_app.py`` the way the Python worker does and serves HTTP, queue (Azurite),
timer and Web PubSub triggers. See README.md in this folder for what it does and does not do.
"""

from devstack.functions_host.host import RunningFunctionsHost, start_functions_host
from devstack.functions_host.indexing import IndexingError

__all__ = ["IndexingError", "RunningFunctionsHost", "start_functions_host"]
