"""Cross-cutting pieces of the function app: settings, errors, auth, clients, logging."""
