"""The Celery application. Tasks are found in each app's ``tasks`` module.

Broker and schedules come from Django settings (``CELERY_*``); periodic schedules live in
django-celery-beat's tables so operators can see and edit them in the admin.
"""

import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
if not (os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")):
    # The embedded run (bin/run on a laptop or in a container, often as root): Celery's warning
    # about running as root reads like a fault there. Messages are JSON, never pickle, either way.
    warnings.filterwarnings("ignore", category=SecurityWarning)

app = Celery("huiyuan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Tasks that import heavy libraries (PyMC) live in their own modules, imported by the worker only;
# the web process queues them by name (segmentation.clv_tasks).
app.autodiscover_tasks(related_name="clv_tasks")
