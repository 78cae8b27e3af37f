from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = _("Members")

    def ready(self):
        from django.contrib.auth.models import Group

        from members.roles import group_display

        # The shipped roles are groups named in both languages; everywhere a group is shown (the
        # role list, the user's roles, filters, titles) it reads in the user's language.
        Group.__str__ = group_display
