"""What every admin module of every app builds on: read-only admins, the search by phone, the
member-by-phone form field, staff form pages and read-only values rendered from templates.

- ``ModelAdmin``, ``TabularInline``, ``StackedInline``: the admin frame's (django-unfold) classes,
  which style forms, lists and filters; every admin of the project derives from them.
- ``SuperuserOnlyMixin``: technical tables only superusers see.
- ``ReadOnlyAdmin`` (and ``ReadOnlyPermissions`` for inlines): rows written by services only — a
  ledger, a history, a result — are viewed here, never added, changed or deleted.
- ``MemberRowsMixin``: the search box finds a row by its member's mobile number in any spelling
  (``members.selectors.member_mobile_condition``); any other term goes to ``search_fields``.
- ``MemberMobileField``: a staff form's "member mobile" field, cleaned to the ``Member``.
- ``form_page`` renders a staff form (``admin/members/form_page.html``, or a template extending it)
  inside the admin; ``add_service_errors`` puts a service's ``ValidationError`` on the form.
- ``render_fragment`` renders a template as the value of a read-only field.

``members`` is the lowest app, so ``segmentation`` and ``campaigns`` import these from here.
"""

import operator
from functools import reduce

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.html import strip_spaces_between_tags
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin as UnfoldModelAdmin
from unfold.admin import StackedInline as UnfoldStackedInline
from unfold.admin import TabularInline as UnfoldTabularInline
from unfold.widgets import CHECKBOX_CLASSES, FILE_CLASSES, INPUT_CLASSES, SELECT_CLASSES, TEXTAREA_CLASSES

from members.mobile import normalize_mobile
from members.models import Member
from members.selectors import member_mobile_condition, members_in_scope, staff_store_ids

FORM_PAGE_TEMPLATE = "admin/members/form_page.html"


class ModelAdmin(UnfoldModelAdmin):
    """The project's model admin: the frame's, with filters applied by a submit button (several at
    once, as operators combine segment, tier, store and ranges) and wide lists scrolled inside."""

    list_filter_submit = True
    list_fullwidth = False
    compressed_fields = True
    warn_unsaved_form = True


class TabularInline(UnfoldTabularInline):
    pass


class StackedInline(UnfoldStackedInline):
    pass


class SuperuserOnlyMixin:
    """A technical table (tokens, idempotency records, the outbox, raw schedules): superusers only,
    whatever permissions a role has; hidden from everyone else's menu and index."""

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class ReadOnlyPermissions:
    """No adding, changing or deleting, for a model admin or an inline alike."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnlyPermissions, ModelAdmin):
    """Rows written by services only: viewable, never added, changed or deleted here.

    Such tables grow with every order, so the list does not count the whole table as well.
    """

    show_full_result_count = False


class MemberRowsMixin:
    """For the admin of rows that belong to a member (orders, ledger entries, coupons, messages…).

    - **Scope:** store managers and staff see only the rows of the members of their stores
      (``members_in_scope``); operators, analysts and superusers see every row. ``member_scoped =
      False`` leaves the scope to the admin (follow-up tasks are scoped by their own store).
    - **Search** by a member's mobile number in any spelling (``+86 138-0013-8000``), matched exactly.
      A term that is not a mobile number is searched in ``search_fields`` as usual — or finds nothing
      when ``mobile_search_only`` is set (a table with a row per member, where any other search
      would read all of it).

    ``mobile_search_members`` are the paths from a row to its member.
    """

    mobile_search_members: tuple[str, ...] = ("member",)
    mobile_search_only = False
    member_scoped = True
    search_fields: tuple[str, ...] = ()

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if not self.member_scoped or staff_store_ids(user=request.user) is None:
            return queryset
        members = members_in_scope(user=request.user).values("pk")
        return queryset.filter(
            reduce(operator.or_, (Q(**{f"{path}__in": members}) for path in self.mobile_search_members))
        )

    def get_search_results(self, request, queryset, search_term):
        condition = member_mobile_condition(term=search_term, member_fields=self.mobile_search_members)
        if condition is not None:
            return queryset.filter(condition), False
        if self.mobile_search_only and search_term.strip():
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)


class MemberMobileField(forms.CharField):
    """A member's mobile number in any spelling; cleans to the ``Member`` who has it."""

    default_error_messages = {"no_member": _("No member has this mobile number.")}

    def __init__(self, *, queryset=None, **kwargs):
        kwargs.setdefault("max_length", 32)  # longer than the stored 11 digits: +86 138-0013-8000
        super().__init__(**kwargs)
        self.queryset = Member.objects.all() if queryset is None else queryset

    def clean(self, value) -> Member | None:
        value = super().clean(value)
        if value in self.empty_values:
            return None
        try:
            mobile = normalize_mobile(value)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None
        member = self.queryset.filter(mobile=mobile).first()
        if member is None:
            raise ValidationError(self.error_messages["no_member"], code="no_member")
        return member


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's ``ValidationError`` on the form: at the field it names, or above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        form.add_error(field if field in form.fields and field != "idempotency_key" else None, errors)


def _frame_classes(widget: forms.Widget) -> list[str]:
    if isinstance(widget, forms.CheckboxInput):
        return CHECKBOX_CLASSES
    if isinstance(widget, forms.FileInput):
        return FILE_CLASSES
    if isinstance(widget, forms.Select | forms.SelectMultiple):
        return SELECT_CLASSES
    if isinstance(widget, forms.Textarea):
        return TEXTAREA_CLASSES
    return INPUT_CLASSES


def frame_widgets(form: forms.Form) -> forms.Form:
    """Give a plain form's fields the frame's look (the classes of unfold's own widgets)."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.HiddenInput | forms.RadioSelect | forms.CheckboxSelectMultiple):
            continue
        classes = widget.attrs.get("class", "")
        widget.attrs["class"] = " ".join(filter(None, [classes, *_frame_classes(widget)]))
    return form


def form_page(model_admin, request, *, template: str = FORM_PAGE_TEMPLATE, **context) -> TemplateResponse:
    """A staff form inside the admin (``form``, ``title``, ``submit_label``, ``back_url`` and
    ``back_label``, an optional ``summary`` above it), with the admin's own context."""
    if isinstance(context.get("form"), forms.Form):
        frame_widgets(context["form"])
    return TemplateResponse(
        request,
        template,
        {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, **context},
    )


def render_fragment(template: str, context: dict) -> SafeString:
    """A template rendered as the value of a read-only field.

    The admin turns line breaks in such a value into ``<br>``: the template's own line breaks
    between tags are dropped, so that a template can be laid out for people to read.
    """
    return mark_safe(strip_spaces_between_tags(render_to_string(template, context)).strip())  # noqa: S308
