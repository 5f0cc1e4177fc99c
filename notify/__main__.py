"""Command-line tools: ``python -m notify send|status|list|watch|inbox|poison|user-hash|…`` (``--help``)."""

from __future__ import annotations

import sys

from notify.cli import local_setting, main

__all__ = ["local_setting", "main"]

if __name__ == "__main__":
    sys.exit(main())
