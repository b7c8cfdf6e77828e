"""The Celery app, as in Celery's Django example.

Configuration comes from Django settings under the `CELERY_` namespace: on
the filesystem broker in embedded mode, on Redis in full mode.
"""

import os
from collections.abc import Mapping

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("paylab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def ensure_broker_folders(options: Mapping[str, object]) -> None:
    """The filesystem transport expects its folders to exist.

    Called when the app is configured and by `/readyz`: a web process that
    has not published anything yet has not configured the app, and must not
    be reported unready only because no worker has created the folders.
    """
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = options.get(key)
        if isinstance(folder, str) and folder:
            os.makedirs(folder, exist_ok=True)


@app.on_after_configure.connect
def _ensure_broker_folders(sender: Celery, **_: object) -> None:
    ensure_broker_folders(sender.conf.broker_transport_options or {})
