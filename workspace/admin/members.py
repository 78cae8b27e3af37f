"""The member admin as staff use it: store-scoped lists and search, masked mobiles, the member 360.

``members.admin.core.MemberAdmin`` is replaced by ``StaffMemberAdmin`` (its import and export stay,
for operators):

- **Scope.** Lists, search, exports and member pages show the members of the user's stores only
  (``members.selectors.members_in_scope``); another member's address answers 404 — unless the user
  just served that member at the counter (below).
- **Search** (``/admin/members/member/?q=…``): an exact full mobile number in any spelling or a
  member's QR code finds that member whatever their store (``member_counter_lookup``, which records
  the look when the member is outside the user's stores); the member's 360 then opens for
  ``COUNTER_ACCESS_SECONDS``. Anything else searches within the scope (``member_search``: the last
  four digits, ``2213 王``, the first digits, a name).
- **Masked mobiles** (``138****8000``) in the list and on the 360; a role with
  ``members.view_full_mobile`` reveals one with a click (``POST …/<id>/reveal-mobile/``,
  ``member_mobile_reveal``, audited) and sees it in that response only. Names are left out for a
  role without ``members.view_personal_data`` (analysts). Exports: ``workspace.resources``.
- **The 360** at ``/admin/members/member/<id>/change/`` for every role (``workspace.selectors.
  member_360``); the stock edit form moves to ``…/<id>/edit/``, for ``members.change_member`` only
  (a POST to ``…/change/`` still saves it). On the 360: record what came of a follow-up task
  (``followup_complete``) and adjust points (``points_adjust``), each needing its permission.
"""

import datetime as dt
import time
import uuid

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef
from django.db.models.expressions import RawSQL
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from unfold.contrib.filters.admin import RangeNumericListFilter

from campaigns.models import FollowUpTask
from campaigns.services.followups import followup_complete
from members.admin.core import MemberAdmin
from members.formatting import local_name
from members.mobile import mask_mobile
from members.models import Member, MemberTag, Order
from members.selectors import member_search, members_in_scope, mobile_shown, name_shown
from members.services.orders import refund_record
from members.services.points import ADJUST_PERMISSION
from members.services.staff import REVEAL_PERMISSION, member_counter_lookup, member_mobile_reveal
from members.services.tags import member_tag_add, member_tag_remove, member_tags_names
from segmentation.models import RfmRun, Segment, SegmentSnapshot
from segmentation.product_selectors import favourite_category_choices
from workspace.forms import FollowUpOutcomeForm, PointsAdjustForm, RefundForm
from workspace.resources import MemberResource
from workspace.selectors import PERSONAL_DATA_PERMISSION, member_360
from workspace.wording import segment_name, segment_sentence, tier_steps

COUNTER_SESSION_KEY = "workspace_counter_members"  # member id → until when (epoch seconds)
COUNTER_ACCESS_SECONDS = 30 * 60
COUNTER_REMEMBERED = 20
TAG_CHOICES = 50  # the most used tags offered in the member list's filter
COMPLETE_TASK_PERMISSION = "campaigns.change_followuptask"
REFUND_PERMISSION = "members.add_refund"
TOP_UP_PERMISSION = "members.top_up_wallet"
MEMBER_360_TEMPLATE = "admin/members/member/member_360.html"


def remember_counter_member(request, member_id: int) -> None:
    """The member just found at the counter: their 360 opens for a while, whatever their store."""
    now = time.time()
    found = {key: until for key, until in request.session.get(COUNTER_SESSION_KEY, {}).items() if until > now}
    found[str(member_id)] = now + COUNTER_ACCESS_SECONDS
    request.session[COUNTER_SESSION_KEY] = dict(sorted(found.items(), key=lambda item: item[1])[-COUNTER_REMEMBERED:])


def served_at_counter(request, member_id) -> bool:
    until = request.session.get(COUNTER_SESSION_KEY, {}).get(str(member_id))
    return until is not None and until > time.time()


admin.site.unregister(Member)


class SegmentFilter(admin.SimpleListFilter):
    """The members of one segment of the active scheme (their current RFM result)."""

    title = _("segment")
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        segments = Segment.objects.filter(scheme__is_active=True).order_by("ordering", "pk")
        return [(segment.pk, segment_name(_segment_dict(segment))) for segment in segments]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(rfm__segment_id=self.value())


class FavouriteCategoryFilter(admin.SimpleListFilter):
    """Members whose favourite product category (the nightly run's rank 1) is this one:
    ``?favourite_category=果茶``."""

    title = _("favourite product category")
    parameter_name = "favourite_category"

    def lookups(self, request, model_admin):
        return [(category, category) for category in favourite_category_choices()]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(favourite_categories__rank=1, favourite_categories__category=self.value())


class MemberTagFilter(admin.SimpleListFilter):
    """Members with this tag: ``?tag=企业客户``."""

    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(name, name) for name in member_tags_names()[:TAG_CHOICES]]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(pk__in=MemberTag.objects.filter(name=self.value()).values("member_id"))


class RfmRangeFilter(RangeNumericListFilter):
    """R, F or M of the member's current result in a range: ``?rfm__recency_days_from=0&
    rfm__recency_days_to=30`` (bounds included; the dashboard's histogram bars link here)."""

    def queryset(self, request, queryset):
        if not any(self.used_parameters.get(name) not in (None, "") for name in self.expected_parameters()):
            return queryset
        try:
            filtered = super().queryset(request, queryset)  # None when a bound is not a number
        except (ValueError, ValidationError):
            filtered = None
        return queryset.none() if filtered is None else filtered


class RecencyFilter(RfmRangeFilter):
    title = _("R (days since the last order)")
    parameter_name = "rfm__recency_days"


class FrequencyFilter(RfmRangeFilter):
    title = _("F (orders in the window)")
    parameter_name = "rfm__frequency"


class MonetaryFilter(RfmRangeFilter):
    title = _("M (spend in the window, yuan)")
    parameter_name = "rfm__monetary"


def _days_choice(value: str | None) -> tuple[int, int] | None:
    """``"30"`` → (30 days, 1 order), ``"30-2"`` → (30 days, 2 orders or more)."""
    try:
        days, _sep, orders = (value or "").partition("-")
        days, orders = int(days), int(orders or 1)
    except ValueError:
        return None
    return (days, orders) if 0 < days <= 3650 and 0 < orders <= 1000 else None


class BoughtFilter(admin.SimpleListFilter):
    """Members with an order (not refunded in full) in the last N days, or with M orders or more:
    ``?bought=30``, ``?bought=30-2`` (the dashboard's active members and repurchase rate)."""

    title = _("bought recently")
    parameter_name = "bought"

    def lookups(self, request, model_admin):
        choices = [(str(days), _("in the last %(days)s days") % {"days": days}) for days in (7, 30, 90)]
        choices += [(f"{days}-2", _("twice or more in the last %(days)s days") % {"days": days}) for days in (30, 90)]
        value, known = self.value(), {key for key, _label in choices}
        parsed = _days_choice(value)
        if value and value not in known and parsed:
            choices.append(
                (value, _("%(orders)s+ orders in the last %(days)s days") % {"orders": parsed[1], "days": parsed[0]})
            )
        return choices

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        parsed = _days_choice(self.value())
        if parsed is None:
            return queryset.none()
        days, orders = parsed
        paid = Order.objects.filter(paid_at__gte=timezone.now() - dt.timedelta(days=days)).exclude(
            status=Order.Status.REFUNDED
        )
        if orders <= 1:
            return queryset.filter(Exists(paid.filter(member_id=OuterRef("pk"))))
        buyers = paid.order_by().values("member_id").annotate(n=Count("pk")).filter(n__gte=orders).values("member_id")
        return queryset.filter(pk__in=buyers)


class RegisteredFilter(admin.SimpleListFilter):
    """Members registered in the last N days: ``?registered=30`` (the dashboard's new members)."""

    title = _("registered recently")
    parameter_name = "registered"

    def lookups(self, request, model_admin):
        return [(str(days), _("in the last %(days)s days") % {"days": days}) for days in (7, 30, 90)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        parsed = _days_choice(self.value())
        if parsed is None:
            return queryset.none()
        return queryset.filter(registered_at__gte=timezone.now() - dt.timedelta(days=parsed[0]))


_SNAPSHOT_IDS = (
    f"SELECT e.member_id FROM {SegmentSnapshot._meta.db_table} s "  # noqa: S608
    "CROSS JOIN LATERAL unnest(s.member_ids) AS e(member_id) WHERE s.run_id = %s"
)
ABSENT_TOKEN, NONE_TOKEN = "x", "0"


def _in_snapshot(queryset, run_id: int, token: str):
    """Members a run put in a segment (``token``: its id, ``0`` no segment, ``x`` not in the run)."""
    if token == ABSENT_TOKEN:
        return queryset.exclude(pk__in=RawSQL(_SNAPSHOT_IDS, [run_id]))  # noqa: S611 (constant SQL, bound values)
    if token == NONE_TOKEN:
        return queryset.filter(pk__in=RawSQL(f"{_SNAPSHOT_IDS} AND s.segment_id IS NULL", [run_id]))  # noqa: S611
    return queryset.filter(pk__in=RawSQL(f"{_SNAPSHOT_IDS} AND s.segment_id = %s", [run_id, int(token)]))  # noqa: S611


def _token_label(token: str, names: dict) -> str:
    if token == ABSENT_TOKEN:
        return str(_("not in the run"))
    if token == NONE_TOKEN:
        return str(_("no segment"))
    return names.get(int(token), "?")


class _SnapshotFilterBase(admin.SimpleListFilter):
    """A filter the dashboard links to, shown only while it is applied (its one choice)."""

    def _parts(self) -> list[str] | None:
        parts = (self.value() or "").split(".")
        if len(parts) != self.arity or not all(
            part.isdigit() or (index % 2 == 1 and part == ABSENT_TOKEN) for index, part in enumerate(parts)
        ):
            return None
        return parts

    def lookups(self, request, model_admin):
        parts = self._parts()
        if parts is None:
            return []
        runs = dict(RfmRun.objects.filter(pk__in=parts[0::2]).values_list("pk", "as_of"))
        segment_ids = [int(token) for token in parts[1::2] if token not in (ABSENT_TOKEN, NONE_TOKEN)]
        names = {
            segment.pk: local_name(segment.name_zh, segment.name_en, segment.slug)
            for segment in Segment.objects.filter(pk__in=segment_ids)
        }
        return [(self.value(), self.describe(parts, runs, names))]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        parts = self._parts()
        if parts is None:
            return queryset.none()
        for run_id, token in zip(parts[0::2], parts[1::2], strict=True):
            queryset = _in_snapshot(queryset, int(run_id), token)
        return queryset


class SnapshotFilter(_SnapshotFilterBase):
    """The members a run put in a segment: ``?snapshot=<run id>.<segment id>``."""

    title = _("segment at a run")
    parameter_name = "snapshot"
    arity = 2

    def describe(self, parts, runs, names):
        return _("%(segment)s on %(date)s") % {
            "segment": _token_label(parts[1], names),
            "date": runs.get(int(parts[0]), "?"),
        }


class MovedFilter(_SnapshotFilterBase):
    """Members who moved from a segment at one run to a segment at another:
    ``?moved=<run A>.<segment at A>.<run B>.<segment at B>`` (the heat map's cells)."""

    title = _("segment change")
    parameter_name = "moved"
    arity = 4

    def describe(self, parts, runs, names):
        return _("%(from)s (%(from_date)s) → %(to)s (%(to_date)s)") % {
            "from": _token_label(parts[1], names),
            "from_date": runs.get(int(parts[0]), "?"),
            "to": _token_label(parts[3], names),
            "to_date": runs.get(int(parts[2]), "?"),
        }


@admin.register(Member)
class StaffMemberAdmin(MemberAdmin):
    resource_classes = [MemberResource]
    list_display = ("masked_mobile", "name", "segment", "home_store", "tier", "registered_at")
    list_display_links = ("masked_mobile",)
    list_select_related = ("home_store", "tier", "rfm__segment")
    list_filter = (
        SegmentFilter,
        FavouriteCategoryFilter,
        MemberTagFilter,
        RecencyFilter,
        FrequencyFilter,
        MonetaryFilter,
        BoughtFilter,
        RegisteredFilter,
        MovedFilter,
        SnapshotFilter,
        "tier",
        "home_store",
        "channel",
        ("registered_at", admin.DateFieldListFilter),
    )
    search_help_text = _(
        "A full mobile number in any spelling or a member QR code (any store); the last four digits, "
        "optionally with a name (2213 王); the first digits; or part of a name."
    )

    # --- the list and the search ------------------------------------------------------------

    @admin.display(description=_("mobile"), ordering="mobile")
    def masked_mobile(self, member):
        return mask_mobile(member.mobile)

    @admin.display(description=_("segment"), ordering="rfm__segment__ordering")
    def segment(self, member):
        result = getattr(member, "rfm", None)
        return segment_name(_segment_dict(result.segment)) if result is not None and result.segment else "—"

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        if request.user.has_perm(PERSONAL_DATA_PERMISSION):
            return shown
        return tuple(name for name in shown if name != "name")

    def get_queryset(self, request):
        return members_in_scope(user=request.user, queryset=super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        found = member_counter_lookup(user=request.user, term=search_term) if self._at_counter(request) else None
        if found is not None:
            remember_counter_member(request, found.pk)
            return self.model._default_manager.filter(pk=found.pk), False
        return member_search(term=search_term, queryset=queryset), False

    def _at_counter(self, request) -> bool:
        """The list's search serves the member at the counter; an export searches the scope only."""
        match = request.resolver_match
        return match is None or match.url_name == f"{self.opts.app_label}_{self.opts.model_name}_changelist"

    def get_export_resource_kwargs(self, request, **kwargs):
        return {**super().get_export_resource_kwargs(request, **kwargs), "user": request.user}

    def get_object(self, request, object_id, from_field=None):
        member = super().get_object(request, object_id, from_field)
        if member is None and from_field is None and served_at_counter(request, object_id):
            member = self.model._default_manager.filter(pk=object_id).first()
        return member

    def history_view(self, request, object_id, extra_context=None):
        # The history is the edit form's: for those who may edit members.
        if not self.has_change_permission(request):
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)

    # --- addresses ----------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:member_id>/edit/", view(self.edit_view), name="members_member_edit"),
            path("<int:member_id>/reveal-mobile/", view(self.reveal_mobile_view), name="members_member_reveal_mobile"),
            path(
                "<int:member_id>/followups/<int:task_id>/done/",
                view(self.followup_done_view),
                name="members_member_followup_done",
            ),
            path("<int:member_id>/adjust-points/", view(self.adjust_points_view), name="members_member_adjust_points"),
            path("<int:member_id>/refund/", view(self.refund_view), name="members_member_refund"),
            path("<int:member_id>/tags/", view(self.tags_view), name="members_member_tags"),
            *super().get_urls(),
        ]

    def _member_or_404(self, request, member_id) -> Member:
        member = self.get_object(request, unquote(str(member_id)))
        if member is None:
            raise Http404(_("No such member in your stores."))
        if not self.has_view_permission(request, member):
            raise PermissionDenied
        return member

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The member 360, for every role; a POST is the edit form's (``edit_view``)."""
        if request.method == "POST":
            return self.edit_view(request, object_id, extra_context=extra_context)
        return self._render_360(request, self._member_or_404(request, object_id))

    def edit_view(self, request, member_id, extra_context=None):
        """The stock change form, for users who may change members."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        return super().change_view(request, str(member_id), extra_context=extra_context)

    def reveal_mobile_view(self, request, member_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = self._member_or_404(request, member_id)
        member_mobile_reveal(user=request.user, member=member)  # PermissionDenied: 403
        return self._render_360(request, member, revealed=True)

    def followup_done_view(self, request, member_id: int, task_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = self._member_or_404(request, member_id)
        if not request.user.has_perm(COMPLETE_TASK_PERMISSION):
            raise PermissionDenied
        task = get_object_or_404(FollowUpTask, pk=task_id, member_id=member.pk)
        form = FollowUpOutcomeForm(request.POST, prefix=f"task{task.pk}")
        if form.is_valid():
            try:
                followup_complete(
                    task=task, outcome=form.cleaned_data["note"], result=form.cleaned_data["result"], actor=request.user
                )
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Recorded: %(reason)s.") % {"reason": task.reason})
            return HttpResponseRedirect(self._360_url(member) + "#member-tasks")
        return self._render_360(request, member, task_form=(task.pk, form))

    def tags_view(self, request, member_id: int):
        """Add a tag (``add``) or take one off (``remove``), then back to the 360's tags."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = self._member_or_404(request, member_id)
        if "remove" in request.POST:
            if not request.user.has_perm("members.delete_membertag"):
                raise PermissionDenied
            if member_tag_remove(member=member, name=request.POST["remove"]):
                messages.success(request, _("Tag %(tag)s removed.") % {"tag": request.POST["remove"]})
        else:
            if not request.user.has_perm("members.add_membertag"):
                raise PermissionDenied
            try:
                tag = member_tag_add(member=member, name=request.POST.get("tag", ""), actor=request.user)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Tagged %(tag)s.") % {"tag": tag.name})
        return HttpResponseRedirect(self._360_url(member) + "#member-tags")

    def adjust_points_view(self, request, member_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = self._member_or_404(request, member_id)
        if not request.user.has_perm(ADJUST_PERMISSION):
            raise PermissionDenied
        form = PointsAdjustForm(request.POST, prefix="adjust")
        if form.is_valid():
            entry = form.adjust(member=member, actor=request.user)
            if entry is not None:
                messages.success(
                    request,
                    _("%(points)+d points; the balance is now %(balance)s.")
                    % {"points": entry.points, "balance": entry.balance_after},
                )
                return HttpResponseRedirect(self._360_url(member) + "#member-value")
        return self._render_360(request, member, adjust_form=form)

    def refund_view(self, request, member_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        member = self._member_or_404(request, member_id)
        if not request.user.has_perm(REFUND_PERMISSION):
            raise PermissionDenied
        form = RefundForm(request.POST, prefix="refund", orders=_refundable(member))
        if form.is_valid():
            order = Order.objects.get(pk=form.cleaned_data["order"], member=member)
            try:
                recorded = refund_record(
                    external_id=f"ADMIN-{form.cleaned_data['idempotency_key']}",
                    order=order,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                if recorded.created:
                    messages.success(
                        request,
                        _("Refund of ¥%(amount)s for order %(order)s recorded.")
                        % {"amount": recorded.refund.amount, "order": order.external_id},
                    )
                return HttpResponseRedirect(self._360_url(member) + "#member-orders")
        return self._render_360(request, member, refund_form=form)

    # --- the 360 --------------------------------------------------------------------------------

    def _360_url(self, member: Member) -> str:
        return reverse("admin:members_member_change", args=[member.pk])

    def _render_360(
        self, request, member: Member, *, revealed=False, task_form=None, adjust_form=None, refund_form=None
    ):
        user = request.user
        data = member_360(member_id=member.pk)
        member = data.member
        task_forms = []
        for task in data.open_tasks:
            if task_form is not None and task_form[0] == task.pk:
                task_forms.append((task, task_form[1]))
            else:
                task_forms.append((task, FollowUpOutcomeForm(prefix=f"task{task.pk}")))
        if adjust_form is None and user.has_perm(ADJUST_PERMISSION):
            adjust_form = PointsAdjustForm(prefix="adjust", initial={"idempotency_key": uuid.uuid4().hex})
        if refund_form is None and user.has_perm(REFUND_PERMISSION):
            refundable = [order for order in data.recent_orders if order.refunded_amount < order.amount]
            if refundable:
                refund_form = RefundForm(
                    prefix="refund", orders=refundable, initial={"idempotency_key": uuid.uuid4().hex}
                )
        referred_by = data.referred_by
        links = self._links(request, member, data)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Member 360"),
            "member": member,
            "data": data,
            "profile": data.profile,
            "mobile": mobile_shown(user=user, mobile=member.mobile, revealed=revealed),
            "revealed": revealed,
            "name": name_shown(user=user, name=member.name),
            "personal_data": user.has_perm(PERSONAL_DATA_PERMISSION),
            "can_reveal": not revealed and user.has_perm(REVEAL_PERMISSION),
            "can_edit": self.has_change_permission(request, member),
            "tier_steps": tier_steps(data.profile.next_tier),
            "segment": data.segment,
            "segment_name": segment_name(data.segment.get("segment")),
            "segment_sentence": segment_sentence(data.segment),
            "segment_history": [
                {
                    "transition": transition,
                    "from_name": segment_name(_segment_dict(transition.from_segment)),
                    "to_name": segment_name(_segment_dict(transition.to_segment)),
                    "colour": transition.to_segment.colour if transition.to_segment else "#9e9e9e",
                }
                for transition in data.segment_history
            ],
            "referrals": [
                {
                    "referral": referral,
                    "mobile": mask_mobile(referral.referee.mobile),
                    "name": name_shown(user=user, name=referral.referee.name),
                }
                for referral in data.referrals_made
            ],
            "referred_by": referred_by,
            "referrer_mobile": mask_mobile(referred_by.referrer.mobile) if referred_by else "",
            "referrer_name": name_shown(user=user, name=referred_by.referrer.name) if referred_by else "",
            "task_forms": task_forms,
            "today": timezone.localdate(),
            "can_complete_tasks": user.has_perm(COMPLETE_TASK_PERMISSION),
            "adjust_form": adjust_form,
            "refund_form": refund_form,
            "links": links,
            # What the members app's change form shows (members.admin.core.MemberAdmin.render_change_form).
            "order_summary": data.order_summary,
            "top_categories": data.top_categories,
            "favourite_categories": data.favourite_categories,
            "recommended_products": data.recommended_products,
            "restricted_bonuses": data.restricted_bonuses,
            "member_tags": data.tags,
            "can_add_tags": user.has_perm("members.add_membertag"),
            "can_remove_tags": user.has_perm("members.delete_membertag"),
            "tags_url": reverse("admin:members_member_tags", args=[member.pk]),
            "recent_orders": data.recent_orders,
            "all_orders_url": links.get("orders", ""),
            "points_entries_url": links.get("points", ""),
            "wallet_entries_url": links.get("wallet", ""),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, MEMBER_360_TEMPLATE, context)

    def _links(self, request, member: Member, data) -> dict[str, str]:
        """The member's rows on the other admin pages, for the lists this user may view."""
        user = request.user

        def changelist(name: str, permission: str, query: str) -> dict[str, str]:
            app_label, codename = permission.split(".")
            model_name = codename.removeprefix("view_")
            model_admin = self.admin_site.get_model_admin(apps.get_model(app_label, model_name))
            if not user.has_perm(permission) or not model_admin.has_view_permission(request):
                return {}  # e.g. the outbox: a technical table for superusers only
            url = reverse(f"admin:{app_label}_{model_name}_changelist")
            return {name: f"{url}?{query}"}

        by_member = f"member__id__exact={member.pk}"
        links = {
            **changelist("orders", "members.view_order", by_member),
            **changelist("points", "members.view_pointsentry", by_member),
            **changelist("tiers", "members.view_tierchange", by_member),
            **changelist("referrals", "members.view_referral", f"referrer__id__exact={member.pk}"),
            **changelist("segment", "segmentation.view_memberrfm", by_member),
            **changelist("segment_history", "segmentation.view_segmenttransition", by_member),
            **changelist("coupons", "campaigns.view_coupon", by_member),
            **changelist("messages", "campaigns.view_outboxmessage", by_member),
            **changelist("tasks", "campaigns.view_followuptask", f"{by_member}&status=all"),
        }
        if data.wallet is not None:
            links.update(changelist("wallet", "members.view_walletentry", f"wallet__id__exact={data.wallet.pk}"))
        if user.has_perm(TOP_UP_PERMISSION):
            links["top_up"] = f"{reverse('admin:members_wallet_top_up')}?member={member.pk}"
        if self.has_change_permission(request, member):
            links["edit"] = reverse("admin:members_member_edit", args=[member.pk])
        return links


def _segment_dict(segment) -> dict | None:
    if segment is None:
        return None
    return {"slug": segment.slug, "name_zh": segment.name_zh, "name_en": segment.name_en}


def _refundable(member: Member):
    """The member's orders a refund may still be recorded for (the 360 offers the recent ones)."""
    return Order.objects.filter(member=member).exclude(status=Order.Status.REFUNDED).order_by("-paid_at")[:50]
