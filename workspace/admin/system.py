"""The admins of the libraries' models in the project's frame: users and roles, the periodic
schedules (django-celery-beat) and the member tokens (simplejwt's blacklist).

They are registered again with the frame's forms and widgets. Operators manage the periodic tasks;
the raw schedules and the tokens are technical tables for superusers only (``SuperuserOnlyMixin``).
"""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule
from rest_framework_simplejwt.token_blacklist import admin as token_admin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget

from members.admin.base import ModelAdmin, SuperuserOnlyMixin

for model in (Group, PeriodicTask, ClockedSchedule, CrontabSchedule, IntervalSchedule, SolarSchedule):
    admin.site.unregister(model)
for model in (OutstandingToken, BlacklistedToken):
    admin.site.unregister(model)


@admin.register(Group)
class RoleAdmin(DjangoGroupAdmin, ModelAdmin):
    pass


class TaskSelectWidget(UnfoldAdminSelectWidget, beat_admin.TaskSelectWidget):
    pass


class PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = UnfoldAdminTextInputWidget()
        self.fields["regtask"].widget = TaskSelectWidget()


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin, ModelAdmin):
    form = PeriodicTaskForm


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(SuperuserOnlyMixin, beat_admin.ClockedScheduleAdmin, ModelAdmin):
    pass


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(SuperuserOnlyMixin, beat_admin.CrontabScheduleAdmin, ModelAdmin):
    pass


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(SuperuserOnlyMixin, beat_admin.IntervalScheduleAdmin, ModelAdmin):
    pass


@admin.register(SolarSchedule)
class SolarScheduleAdmin(SuperuserOnlyMixin, beat_admin.SolarScheduleAdmin, ModelAdmin):
    pass


@admin.register(OutstandingToken)
class OutstandingTokenAdmin(SuperuserOnlyMixin, token_admin.OutstandingTokenAdmin, ModelAdmin):
    pass


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(SuperuserOnlyMixin, token_admin.BlacklistedTokenAdmin, ModelAdmin):
    pass
