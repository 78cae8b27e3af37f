"""Write the platform's periodic schedules (config.periodic.SCHEDULES) into django-celery-beat."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config.periodic import SCHEDULES


class Command(BaseCommand):
    help = "Create the periodic tasks (idempotent). Operators' edits are kept unless --reset."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="Overwrite schedules edited in the admin.")

    @transaction.atomic
    def handle(self, *args, reset, **options):
        created = 0
        for schedule in SCHEDULES:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=schedule.minute,
                hour=schedule.hour,
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone=settings.TIME_ZONE,
            )
            defaults = {"task": schedule.task, "crontab": crontab, "description": schedule.description}
            if reset:
                _, was_created = PeriodicTask.objects.update_or_create(name=schedule.name, defaults=defaults)
            else:
                _, was_created = PeriodicTask.objects.get_or_create(name=schedule.name, defaults=defaults)
            created += was_created
        if options["verbosity"]:
            self.stdout.write(f"Periodic tasks: {created} created, {len(SCHEDULES) - created} already there.")
