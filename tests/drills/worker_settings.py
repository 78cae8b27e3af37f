"""Settings of the Celery worker a fault drill starts: the test settings (the drill's test database
comes in ``DATABASE_URL``, its private Redis in ``CELERY_BROKER_URL``), with tasks sent to the
broker instead of run inline — as in production, a task that queues another one queues it."""

from config.settings.test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = False
