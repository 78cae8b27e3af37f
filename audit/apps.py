from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from pghistory.apps import PGHistoryConfig


class AuditConfig(AppConfig):
    default = True  # the module has two configurations: this one is the app's
    name = "audit"
    verbose_name = _("Audit")


class PghistoryConfig(PGHistoryConfig):
    """django-pghistory (the audit trail's engine), named in the user's language: its tables appear
    in the role and user pages' permission chooser."""

    verbose_name = _("Change history")

    def ready(self):
        super().ready()
        from pghistory.models import Context, Events, MiddlewareEvents

        names = (
            (Context, _("change context"), _("change contexts")),
            (Events, _("change event"), _("change events")),
            (MiddlewareEvents, _("change event of a request"), _("change events of requests")),
        )
        for model, name, plural in names:
            model._meta.verbose_name = name
            model._meta.verbose_name_plural = plural
