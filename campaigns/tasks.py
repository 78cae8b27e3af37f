"""Celery tasks of the campaigns app: thin, idempotent, take ids, call services."""
