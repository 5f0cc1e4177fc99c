"""HTTP, queue, timer and Web PubSub triggers; each module exposes ``bp = func.Blueprint()``."""
