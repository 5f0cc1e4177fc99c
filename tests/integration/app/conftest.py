"""The app stack fixtures of ``test_notifier`` (Azurite tables and queues, both emulators), for every module
here that drives the notifier the same way."""

from tests.integration.app.test_notifier import connect, stack

__all__ = ["connect", "stack"]
