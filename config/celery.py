"""The Celery application. Tasks are found in each app's ``tasks`` module.

Broker and schedules come from Django settings (``CELERY_*``); periodic schedules live in
django-celery-beat's tables so operators can see and edit them in the admin.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("huiyuan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
