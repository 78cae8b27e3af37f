"""Permission names in the user's language, for the role and user pages' permission choosers.

Django stores ``Permission.name`` in English (``Can view member``): the built-in ones are made from
the model's untranslated ``verbose_name_raw``, and a model's own ``Meta.permissions`` are saved as
the English msgid. The choosers show each permission as *app | model | action* with every part
translated: the four built-in actions from the model's translated ``verbose_name``, the project's
own permissions through the catalogue (their stored name is the msgid).
"""

from django.contrib.auth.models import Permission
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

BUILTIN_ACTIONS = {
    "add": _("Can add %(verbose_name)s"),
    "change": _("Can change %(verbose_name)s"),
    "delete": _("Can delete %(verbose_name)s"),
    "view": _("Can view %(verbose_name)s"),
}


def permission_label(permission: Permission) -> str:
    """``会员 | 会员 | 可以查看会员`` for ``members.view_member`` in Chinese (``Members | member | Can
    view member`` in English); a permission of a model that no longer exists keeps its name."""
    content_type = permission.content_type
    model = content_type.model_class()
    if model is None:
        return str(permission)
    opts = model._meta
    action, _sep, model_name = permission.codename.partition("_")
    if model_name == opts.model_name and action in BUILTIN_ACTIONS:
        name = BUILTIN_ACTIONS[action] % {"verbose_name": opts.verbose_name}
    else:
        name = gettext(permission.name)
    return f"{opts.app_config.verbose_name} | {opts.verbose_name} | {name}"


class TranslatedPermissionsMixin:
    """For an admin with a ``permissions`` or ``user_permissions`` chooser (groups, users)."""

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if field is not None and db_field.remote_field.model is Permission:
            field.label_from_instance = permission_label
        return field
