import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from config.celery import app
from config.periodic import SCHEDULES


def test_every_schedule_names_a_registered_task():
    app.loader.import_default_modules()
    assert {s.task for s in SCHEDULES} <= set(app.tasks)


@pytest.mark.django_db
def test_setup_periodic_tasks_is_idempotent_and_keeps_operators_edits():
    # given
    call_command("setup_periodic_tasks", verbosity=0)
    PeriodicTask.objects.filter(name="Expire points").update(enabled=False, description="paused by ops")
    # when
    call_command("setup_periodic_tasks", verbosity=0)
    # then
    assert PeriodicTask.objects.filter(name__in=[s.name for s in SCHEDULES]).count() == len(SCHEDULES)
    edited = PeriodicTask.objects.get(name="Expire points")
    assert (edited.enabled, edited.description) == (False, "paused by ops")
    # and --reset restores the definition
    call_command("setup_periodic_tasks", "--reset", verbosity=0)
    assert PeriodicTask.objects.get(name="Expire points").description != "paused by ops"
