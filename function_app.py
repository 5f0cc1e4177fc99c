"""The function app: creates the FunctionApp and registers every blueprint. Nothing else."""

import azure.functions as func

from notify.blueprints import devices, inbox, manage, negotiate, notifier, preferences, presence, webhooks

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(negotiate.bp)
app.register_functions(devices.bp)
app.register_functions(preferences.bp)
app.register_functions(presence.bp)
app.register_functions(notifier.bp)
app.register_functions(inbox.bp)
app.register_functions(webhooks.bp)
app.register_functions(manage.bp)
