"""WSGI entry point, for serving the HTTP API from a pre-forking server."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# No event loop here: a confirmation waiting on a simulated processor sleeps
# in its worker (payments.api.deferred); daphne (ASGI) waits without one.
os.environ.setdefault("PAYLAB_WSGI", "1")
application = get_wsgi_application()
