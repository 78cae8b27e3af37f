#!/bin/sh
# The container's processes, by name (the same as deploy/Procfile); anything else runs as given.
set -e
case "$1" in
  release)
    python manage.py migrate --noinput
    python manage.py setup_periodic_tasks
    ;;
  web)
    exec gunicorn config.wsgi --config config/gunicorn.py
    ;;
  worker)
    exec celery -A config worker --loglevel INFO --pool prefork --concurrency "${CELERY_CONCURRENCY:-4}"
    ;;
  beat)
    exec celery -A config beat --loglevel INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler
    ;;
  *)
    exec "$@"
    ;;
esac
