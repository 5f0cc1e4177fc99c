"""The app's function index as the worker builds it, from a fresh ``function_app`` module.

``FunctionApp.get_functions()`` may run only once per app instance (it records the names to reject
duplicates), so every caller indexes its own freshly imported copy of ``function_app.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

FUNCTION_APP = Path(__file__).resolve().parent.parent / "function_app.py"


def indexed_functions() -> list[Any]:
    """``app.get_functions()`` of a new import of function_app.py."""
    spec = importlib.util.spec_from_file_location("function_app_for_index", FUNCTION_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.app.get_functions())
