"""Fixtures shared by every test: the local stack's services, started once per session on free ports."""

pytest_plugins = [
    "devstack.testing",
    "devstack.webpubsub.testing",
    "devstack.notificationhubs.testing",
]
