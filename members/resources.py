"""django-import-export resources for members and orders, used by the admin's import and export.

The columns are those of the CSV interface in PRODUCT.md (extra columns are ignored):

* members: ``mobile,name,gender,birthday,registered_at,channel,store_code`` and, on export only,
  ``referral_code``. A member is identified by the mobile number in any spelling, so importing the
  same file twice changes nothing (unchanged rows are reported as skipped).
* orders: ``order_id,member_mobile,store_code,paid_at,amount`` and, on export only,
  ``refunded_amount,status``. Every new order goes through ``order_record``, so the idempotency
  rules and the ``order_recorded`` event apply: an order id sent again with the same content is
  skipped, with different content it is a bad row.

A file imports whole or not at all (the admin rolls back on any bad row), and each bad row is
reported under the name of the column that is wrong.

Exports are safe to open in a spreadsheet: a text cell starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return gets a leading ``'`` so that it is shown, never run as a formula;
importing such a cell drops that ``'`` again, so an exported file re-imports unchanged.
"""

import datetime as dt
from decimal import Decimal

import tablib
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import TextChoices
from django.utils import timezone, translation
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.formats import base_formats

from members.mobile import normalize_mobile
from members.models import Member, Order, Store
from members.money import to_money
from members.services.orders import order_record

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_GUARD = "'"

#: Resource field names in column order (each field's ``column_name`` is what the file says).
MEMBER_COLUMNS = ("mobile", "name", "gender", "birthday", "registered_at", "channel", "store_code", "referral_code")
ORDER_FIELDS = ("external_id", "member", "store", "paid_at", "amount", "refunded_amount", "status")


def _first_message(exc: ValidationError) -> str:
    return exc.messages[0] if exc.messages else str(exc)


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- file format --------------------------------------------------------------------------


class SpreadsheetCSV(base_formats.CSV):
    """CSV as Chinese spreadsheets write it.

    Reads UTF-8 with or without a byte-order mark and falls back to GB18030 (a superset of GBK,
    what Excel saves on a Chinese Windows). Writes UTF-8 with a byte-order mark so that Excel shows
    Chinese names correctly. Formulae are neutralised by the resources' text widgets and, for a
    leading ``=``, again by ``IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT``.
    """

    BOM = "\ufeff"
    CONTENT_TYPE = "text/csv; charset=utf-8"

    def is_binary(self):
        # Read the upload as bytes: the encoding is decided here, not by the admin.
        return True

    def get_read_mode(self):
        return "rb"

    def create_dataset(self, in_stream, **kwargs):
        if isinstance(in_stream, bytes):
            try:
                in_stream = in_stream.decode("utf-8-sig")
            except UnicodeDecodeError:
                in_stream = in_stream.decode("gb18030")
        return tablib.import_set(in_stream.removeprefix(self.BOM), format="csv", **kwargs)

    def export_data(self, dataset, **kwargs):
        return self.BOM + super().export_data(dataset, **kwargs)


# --- widgets ------------------------------------------------------------------------------


class SafeTextWidget(widgets.Widget):
    """Free text: stripped on import, guarded against spreadsheet formulae on export.

    A blank cell is ``None`` (so, with ``saves_null_values=False``, it keeps the stored value) or,
    when ``required``, an error.
    """

    def __init__(self, *, required: bool = False, **kwargs):
        self.required = required
        super().__init__(**kwargs)

    def clean(self, value, row=None, **kwargs):
        if _is_blank(value):
            if self.required:
                raise ValueError(_("This value is required."))
            return None
        text = str(value).strip()
        if text.startswith(FORMULA_GUARD) and text[1:].startswith(FORMULA_TRIGGERS):
            text = text[1:]
        return text

    def render(self, value, obj=None, **kwargs):
        text = "" if value is None else str(value)
        if text.startswith(FORMULA_TRIGGERS):
            return FORMULA_GUARD + text
        return text


class MobileWidget(widgets.Widget):
    """A mainland China mobile number in any spelling, stored in its canonical 11 digits."""

    def clean(self, value, row=None, **kwargs):
        if _is_blank(value):
            raise ValueError(_("A mobile number is required."))
        try:
            return normalize_mobile(str(value))
        except ValidationError as exc:
            raise ValueError(_first_message(exc)) from None

    def render(self, value, obj=None, **kwargs):
        return value or ""


class ChoiceWidget(widgets.Widget):
    """One of a ``TextChoices``: its value (``female``) or its label in any of the site's
    languages (``Female``, ``女``), whatever language the admin is shown in."""

    def __init__(self, choices: type[TextChoices], **kwargs):
        self.choices = choices
        self._spellings: dict[str, str] | None = None
        super().__init__(**kwargs)

    def spellings(self) -> dict[str, str]:
        if self._spellings is None:
            spellings = {}
            for code, _name in settings.LANGUAGES:
                with translation.override(code):
                    spellings |= {str(choice.label).casefold(): choice.value for choice in self.choices}
            self._spellings = spellings | {choice.value.casefold(): choice.value for choice in self.choices}
        return self._spellings

    def clean(self, value, row=None, **kwargs):
        if _is_blank(value):
            return None
        choice = self.spellings().get(str(value).strip().casefold())
        if choice is not None:
            return choice
        raise ValueError(
            _("“%(value)s” is not one of: %(choices)s.") % {"value": value, "choices": ", ".join(self.choices.values)}
        )

    def render(self, value, obj=None, **kwargs):
        return value or ""


class IsoDateWidget(widgets.Widget):
    """A date as ``YYYY-MM-DD`` (``YYYY/MM/DD`` is accepted too)."""

    def clean(self, value, row=None, **kwargs):
        if _is_blank(value):
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        text = str(value).strip().replace("/", "-")
        try:
            parsed = parse_date(text)
        except ValueError:
            parsed = None
        if parsed is None:
            raise ValueError(_("“%(value)s” is not a date; write it as YYYY-MM-DD.") % {"value": value})
        return parsed

    def render(self, value, obj=None, **kwargs):
        return value.isoformat() if value else ""


class IsoDateTimeWidget(widgets.Widget):
    """A date and time in ISO 8601 (``2024-05-01 14:30:00+08:00``); a date alone means midnight.

    A time without an offset is in the brand's time zone (``TIME_ZONE``). Exports carry the offset.
    """

    def __init__(self, *, required: bool = False, **kwargs):
        self.required = required
        super().__init__(**kwargs)

    def clean(self, value, row=None, **kwargs):
        if _is_blank(value):
            if self.required:
                raise ValueError(_("A date and time is required."))
            return None
        if isinstance(value, dt.datetime):
            parsed = value
        else:
            text = str(value).strip().replace("/", "-")
            try:
                parsed = parse_datetime(text)
                if parsed is None and (day := parse_date(text)) is not None:
                    parsed = dt.datetime.combine(day, dt.time())
            except ValueError:
                parsed = None
        if parsed is None:
            raise ValueError(
                _("“%(value)s” is not a date and time; write it in ISO 8601, e.g. 2024-05-01 14:30:00+08:00.")
                % {"value": value}
            )
        return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed

    def render(self, value, obj=None, **kwargs):
        return timezone.localtime(value).isoformat(sep=" ") if value else ""


class MoneyWidget(widgets.Widget):
    """An amount in yuan with at most two decimal places, never a float."""

    def clean(self, value, row=None, **kwargs):
        if _is_blank(value):
            raise ValueError(_("An amount is required."))
        try:
            return to_money(str(value).strip())
        except ValidationError as exc:
            raise ValueError(_first_message(exc)) from None

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(Decimal(value).quantize(Decimal("0.01")))


class StoreByCodeWidget(SafeTextWidget):
    """A store given by its code. Stores are few, so each code is looked up once per import."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._stores: dict[str, Store] = {}

    def clean(self, value, row=None, **kwargs):
        code = super().clean(value, row, **kwargs)
        if code is None:
            return None
        if code not in self._stores:
            store = Store.objects.filter(code=code).first()
            if store is None:
                raise ValueError(_("Unknown store code “%(code)s”.") % {"code": code})
            self._stores[code] = store
        return self._stores[code]

    def render(self, value, obj=None, **kwargs):
        return super().render(value.code if value is not None else None)


class MemberByMobileWidget(MobileWidget):
    """A member given by their mobile number in any spelling."""

    def clean(self, value, row=None, **kwargs):
        mobile = super().clean(value, row, **kwargs)
        member = Member.objects.filter(mobile=mobile).first()
        if member is None:
            raise ValueError(_("No member has the mobile number “%(mobile)s”.") % {"mobile": value})
        return member

    def render(self, value, obj=None, **kwargs):
        return value.mobile if value is not None else ""


# --- resources ----------------------------------------------------------------------------


class HuiyuanResource(resources.ModelResource):
    """What the members and orders resources share: error reporting by column, no read-only
    columns on import, and a bad identifying cell reported as a cell error, not a crash."""

    #: Attributes every imported row must end up with.
    required_attributes: tuple[str, ...] = ()

    def get_import_fields(self):
        return [field for field in super().get_import_fields() if not field.readonly]

    def get_instance(self, instance_loader, row):
        try:
            return super().get_instance(instance_loader, row)
        except ValueError:
            # The id cell is unreadable; import_instance() reports it against its column.
            return None

    def errors_by_column(self, exc: ValidationError) -> ValidationError:
        """``exc`` keyed by file column (``store_code``) instead of model attribute (``home_store``)."""
        columns = {field.attribute: field.column_name for field in self.fields.values() if field.attribute}
        if not hasattr(exc, "error_dict"):
            return exc
        return ValidationError({columns.get(key, key): messages for key, messages in exc.message_dict.items()})

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """Also require ``required_attributes``: a column missing from the file leaves them unset."""
        errors = dict(import_validation_errors or {})
        for attribute in self.required_attributes:
            # getattr's default also covers an unset foreign key (RelatedObjectDoesNotExist).
            if attribute not in errors and getattr(instance, attribute, None) in (None, ""):
                errors[attribute] = [ValidationError(_("This value is required."), code="required")]
        try:
            super().validate_instance(instance, errors, validate_unique)
        except ValidationError as exc:
            raise self.errors_by_column(exc) from None


class MemberResource(HuiyuanResource):
    mobile = fields.Field(attribute="mobile", column_name="mobile", widget=MobileWidget())
    name = fields.Field(attribute="name", column_name="name", widget=SafeTextWidget(), saves_null_values=False)
    gender = fields.Field(
        attribute="gender", column_name="gender", widget=ChoiceWidget(Member.Gender), saves_null_values=False
    )
    birthday = fields.Field(
        attribute="birthday", column_name="birthday", widget=IsoDateWidget(), saves_null_values=False
    )
    registered_at = fields.Field(
        attribute="registered_at", column_name="registered_at", widget=IsoDateTimeWidget(), saves_null_values=False
    )
    channel = fields.Field(
        attribute="channel", column_name="channel", widget=ChoiceWidget(Member.Channel), saves_null_values=False
    )
    store_code = fields.Field(
        attribute="home_store", column_name="store_code", widget=StoreByCodeWidget(), saves_null_values=False
    )
    referral_code = fields.Field(
        attribute="referral_code", column_name="referral_code", widget=SafeTextWidget(), readonly=True
    )

    required_attributes = ("mobile", "registered_at")

    class Meta:
        model = Member
        name = _("Members")
        fields = MEMBER_COLUMNS
        import_order = MEMBER_COLUMNS
        export_order = MEMBER_COLUMNS
        import_id_fields = ("mobile",)
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def init_instance(self, row=None):
        return Member(channel=Member.Channel.IMPORT)

    def get_queryset(self):
        return Member.objects.select_related("home_store")


class OrderResource(HuiyuanResource):
    external_id = fields.Field(attribute="external_id", column_name="order_id", widget=SafeTextWidget(required=True))
    member = fields.Field(attribute="member", column_name="member_mobile", widget=MemberByMobileWidget())
    store = fields.Field(attribute="store", column_name="store_code", widget=StoreByCodeWidget(required=True))
    paid_at = fields.Field(attribute="paid_at", column_name="paid_at", widget=IsoDateTimeWidget(required=True))
    amount = fields.Field(attribute="amount", column_name="amount", widget=MoneyWidget())
    refunded_amount = fields.Field(
        attribute="refunded_amount", column_name="refunded_amount", widget=MoneyWidget(), readonly=True
    )
    status = fields.Field(attribute="status", column_name="status", readonly=True)

    required_attributes = ("external_id", "member", "store", "paid_at", "amount")

    class Meta:
        model = Order
        name = _("Orders")
        fields = ORDER_FIELDS
        import_order = ORDER_FIELDS
        export_order = ORDER_FIELDS
        import_id_fields = ("external_id",)
        skip_unchanged = True
        report_skipped = True
        # order_record() validates and enforces the database constraints itself.
        clean_model_instances = False

    def get_queryset(self):
        return Order.objects.select_related("member", "store")

    def save_instance(self, instance, is_create, row, **kwargs):
        """Record the order through ``order_record`` (idempotent, publishes ``order_recorded``).

        An existing order reaches this point only when the file differs from it (unchanged rows
        are skipped), which ``order_record`` refuses as a conflict: a bad row.
        """
        self.before_save_instance(instance, row, **kwargs)
        try:
            recorded = order_record(
                external_id=instance.external_id,
                member=instance.member,
                store=instance.store,
                paid_at=instance.paid_at,
                amount=instance.amount,
            )
        except ValidationError as exc:
            raise self.errors_by_column(exc) from None
        for field in Order._meta.concrete_fields:
            setattr(instance, field.attname, getattr(recorded.order, field.attname))
        instance._state.adding = False
        self.after_save_instance(instance, row, **kwargs)
