"""The admins of the libraries' models in the project's frame: users and roles, the periodic
schedules (django-celery-beat) and the member tokens (simplejwt's blacklist).

They are registered again with the frame's forms and widgets. Operators manage the periodic tasks;
the raw schedules and the tokens are technical tables for superusers only (``SuperuserOnlyMixin``).
"""

from cron_descriptor import (
    ExpressionDescriptor,
    FormatException,
    MissingFieldException,
    Options,
    WrongArgumentException,
)
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule
from rest_framework_simplejwt.token_blacklist import admin as token_admin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget

from config.periodic import SCHEDULES
from members.admin.base import ModelAdmin, SuperuserOnlyMixin
from members.formatting import in_chinese
from workspace.admin.permissions import TranslatedPermissionsMixin

SHIPPED_SCHEDULES = frozenset(schedule.name for schedule in SCHEDULES)

for model in (Group, PeriodicTask, ClockedSchedule, CrontabSchedule, IntervalSchedule, SolarSchedule):
    admin.site.unregister(model)
for model in (OutstandingToken, BlacklistedToken):
    admin.site.unregister(model)


@admin.register(Group)
class RoleAdmin(TranslatedPermissionsMixin, DjangoGroupAdmin, ModelAdmin):
    pass


class TaskSelectWidget(UnfoldAdminSelectWidget, beat_admin.TaskSelectWidget):
    pass


def crontab_in_words(crontab: CrontabSchedule) -> str:
    """A crontab in the page's language ("在 01:30", "Every 10 minutes"), with its time zone when it
    is not the platform's (settings.TIME_ZONE)."""
    options = Options()
    options.locale_code = "zh_CN" if in_chinese() else "en_US"
    options.use_24hour_time_format = True
    expression = " ".join(
        (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week)
    )
    try:
        words = ExpressionDescriptor(expression, options).get_description()
    except (FormatException, MissingFieldException, WrongArgumentException):  # show it as written
        words = expression
    if str(crontab.timezone) == settings.TIME_ZONE:  # the platform's own: said once, on the page
        return words
    return f"{words} ({crontab.timezone})"


class ShownAs:
    """``obj`` in a template, with ``text`` as what it prints."""

    def __init__(self, obj, text: str):
        self._obj, self._text = obj, text

    def __getattr__(self, name):
        return getattr(self._obj, name)

    def __str__(self):
        return self._text


class PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = UnfoldAdminTextInputWidget()
        self.fields["regtask"].widget = TaskSelectWidget()
        if "crontab" in self.fields:
            self.fields["crontab"].label_from_instance = crontab_in_words


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin, ModelAdmin):
    """The platform's schedules keep their English name as their key (``setup_periodic_tasks``
    finds them by it); the list and the form show name and description in the user's language.
    A shipped schedule's name and description are not edited here (its timing and switch are);
    an operator's own task shows what was typed."""

    form = PeriodicTaskForm
    list_display = (
        "shown_name",
        "shown_description",
        "enabled",
        "shown_schedule",
        "start_time",
        "last_run_at",
        "one_off",
    )
    search_fields = ("name", "task", "description")
    list_filter = ("enabled", "one_off", "start_time", "last_run_at")

    @admin.display(description=_("name"), ordering="name")
    def shown_name(self, task):
        return gettext(task.name) if task.name in SHIPPED_SCHEDULES else task.name

    @admin.display(description=_("what it does"))
    def shown_description(self, task):
        return gettext(task.description) if task.name in SHIPPED_SCHEDULES else task.description

    @admin.display(description=_("schedule"))
    def shown_schedule(self, task):
        if task.crontab_id:
            return crontab_in_words(task.crontab)
        return str(task.scheduler or "—")

    @admin.display(description=_("schedule in words"))
    def crontab_translation(self, task):
        return crontab_in_words(task.crontab) if task.crontab_id else "—"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The page's title and breadcrumb name a shipped task in the user's language (the library's
        # str() is the English key and its crontab), and the crontab chooser's live help says the
        # schedule in words in that language too.
        if obj is not None and obj.name in SHIPPED_SCHEDULES:
            context["original"] = ShownAs(obj, gettext(obj.name))
            context["subtitle"] = gettext(obj.name)
        context["readable_crontabs"] = {
            crontab.pk: crontab_in_words(crontab) for crontab in CrontabSchedule.objects.all()
        }
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and obj.name in SHIPPED_SCHEDULES:
            return (*fields, "shown_name", "shown_description")
        return fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or obj.name not in SHIPPED_SCHEDULES:
            return fieldsets
        shown = {"name": "shown_name", "description": "shown_description"}
        (title, options), *rest = fieldsets
        fields = tuple(shown.get(field, field) for field in options["fields"])
        return ((title, {**options, "fields": fields}), *rest)


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
