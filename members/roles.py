"""The roles the product ships (PRODUCT.md, *Roles and personal data*), as Django groups with their
permissions. A data migration installs them (``members/migrations/0011_roles.py``) and
``roles_install`` can put them back; ``demo_users`` makes one user of each.

- 运营 operator: everything (every permission of the project's apps, the schedules, and the users
  and groups — operators create staff accounts and assign them to stores).
- 店长 store manager: their stores' members, orders and tasks, full mobile numbers, points
  adjustments, refunds; campaigns, offers and effect reports read-only.
- 店员 store staff: the member 360 and the follow-up tasks of their stores; masked mobiles.
- 分析 analyst: dashboards, reports and exports of every store, without personal data (no names,
  masked mobiles).

Store managers and staff see the members of the stores they are assigned to (``StoreStaff``);
whoever has ``members.view_all_stores`` (operators, analysts, superusers) sees every store.
"""

from dataclasses import dataclass

from members.formatting import local_name

OPERATOR_APPS = ("members", "segmentation", "campaigns", "django_celery_beat", "auth")

_STAFF = (
    "members.view_member",
    "members.view_personal_data",
    "members.view_order",
    "members.view_orderline",
    "members.view_product",
    "members.view_refund",
    "members.view_pointsaccount",
    "members.view_pointsentry",
    "members.view_wallet",
    "members.view_walletentry",
    "members.view_tierchange",
    "members.view_referral",
    "members.view_interaction",
    "members.view_membertag",
    "members.add_membertag",
    "members.delete_membertag",
    "members.view_store",
    "members.view_tier",
    "segmentation.view_memberrfm",
    "segmentation.view_segmenttransition",
    "segmentation.view_segment",
    "campaigns.view_coupon",
    "campaigns.view_reward",
    "campaigns.view_rewardredemption",
    "campaigns.view_stampcompletion",
    "campaigns.view_campaigngrant",
    "campaigns.view_outboxmessage",
    "campaigns.view_followuptask",
    "campaigns.change_followuptask",
)
_MANAGER = (
    *_STAFF,
    "members.view_full_mobile",
    "members.adjust_points",
    "members.add_refund",
    "campaigns.reverse_rewardredemption",
    "members.view_storestaff",
    "campaigns.view_campaign",
    "campaigns.view_campaignbenefit",
    "campaigns.view_campaigneffect",
    "campaigns.view_coupontemplate",
    "campaigns.view_topupoffer",
    "campaigns.view_trigger",
    "campaigns.view_stampcard",
    "campaigns.add_followuptask",
)
_ANALYST = (
    "members.view_all_stores",
    "members.view_member",
    "members.view_order",
    "members.view_orderline",
    "members.view_product",
    "members.view_store",
    "members.view_tier",
    "members.view_tierchange",
    "segmentation.view_scheme",
    "segmentation.view_segment",
    "members.view_interaction",
    "members.view_membertag",
    "members.view_tagrule",
    "segmentation.view_segmentrule",
    "segmentation.view_rfmrun",
    "segmentation.view_memberrfm",
    "segmentation.view_segmentsnapshot",
    "segmentation.view_segmenttransition",
    "segmentation.view_clvrun",
    "segmentation.view_memberclv",
    "campaigns.view_campaign",
    "campaigns.view_campaignbenefit",
    "campaigns.view_campaigneffect",
    "campaigns.view_coupontemplate",
    "campaigns.view_topupoffer",
    "campaigns.view_trigger",
    "campaigns.view_reward",
    "campaigns.view_stampcard",
)


@dataclass(frozen=True)
class Role:
    key: str  # as ``demo_users`` prints it
    group: str  # the group's name in the database: both languages, as shipped
    permissions: tuple[str, ...] | None  # "app_label.codename"; None: every permission of OPERATOR_APPS
    store_scoped: bool  # sees only the members of the stores the user is assigned to
    name_zh: str = ""
    name_en: str = ""


ROLES = (
    Role("operator", "运营 operator", None, store_scoped=False, name_zh="运营", name_en="Operator"),
    Role("manager", "店长 store manager", _MANAGER, store_scoped=True, name_zh="店长", name_en="Store manager"),
    Role("staff", "店员 store staff", _STAFF, store_scoped=True, name_zh="店员", name_en="Store staff"),
    Role("analyst", "分析 analyst", _ANALYST, store_scoped=False, name_zh="分析", name_en="Analyst"),
)
ROLE_BY_KEY = {role.key: role for role in ROLES}
ROLE_BY_GROUP = {role.group: role for role in ROLES}


def group_display(group) -> str:
    """A group as the admin shows it: a shipped role in the user's language (``运营`` / ``Operator``),
    any other group by its name. ``members.apps`` makes it ``Group.__str__``, so that the role list,
    the user's role chooser and filter, and page titles all follow the language of the page."""
    role = ROLE_BY_GROUP.get(group.name)
    return local_name(role.name_zh, role.name_en, group.name) if role else group.name


def _model_is_later(apps, app_label: str, codename: str) -> bool:
    """Whether ``codename`` is a model permission (``view_clvrun``) of a model that ``apps`` does not
    have yet: an earlier migration installs the roles before a later one adds the model, whose own
    migration grants its permissions then (``segmentation`` 0007). A model's own permission
    (``reverse_rewardredemption``) counts too when the code defines that model and ``apps`` does not."""
    from django.apps import apps as live_apps

    action, _sep, model_name = codename.partition("_")
    if action not in {"add", "change", "delete", "view"}:
        try:
            live_apps.get_model(app_label, model_name)
        except LookupError:
            return False
    try:
        apps.get_model(app_label, model_name)
    except LookupError:
        return True
    return False


def roles_install(apps) -> None:
    """Create or update the role groups with exactly their permissions (``apps``: the app registry,
    or a migration's historical one). Permissions are created first when missing."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # a migration's apps have none
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = models_module
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role in ROLES:
        group, _created = group_model.objects.get_or_create(name=role.group)
        if role.permissions is None:
            permissions = permission_model.objects.filter(content_type__app_label__in=OPERATOR_APPS)
        else:
            wanted = {tuple(name.split(".", 1)) for name in role.permissions}
            permissions = [
                permission
                for permission in permission_model.objects.filter(
                    content_type__app_label__in={app for app, _codename in wanted}
                ).select_related("content_type")
                if (permission.content_type.app_label, permission.codename) in wanted
            ]
            missing = {
                (app, codename)
                for app, codename in wanted - {(p.content_type.app_label, p.codename) for p in permissions}
                if not _model_is_later(apps, app, codename)
            }
            if missing:
                raise LookupError(f"role {role.key}: no such permissions {sorted(missing)}")
        group.permissions.set(permissions)
