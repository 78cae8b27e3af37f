"""Celery tasks of the members app: thin, idempotent, take ids, call services."""
