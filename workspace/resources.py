"""The member export as each role may see it (PRODUCT.md, *Roles and personal data*).

``MemberResource`` is ``members.resources.MemberResource`` told who exports: mobiles are masked
(``138****8000``) for a user without ``members.view_full_mobile``, names and birthdays blank for one
without ``members.view_personal_data`` (analysts). The rows are the admin list's, so the store
scope and the search apply as well. The class keeps its name, so that the export form's fields
(``memberresource_mobile``…) stay what scripts and tests post.

The export adds the member's ``tags`` (staff's and the rules', joined by ``|`` as the product
import reads tags), read with the rows in one query (a correlated array per member); without
personal data, the birthday-month rule's tag is left out too.
"""

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef
from import_export import fields

from members import resources
from members.mobile import mask_mobile
from members.models import MemberTag, TagRule
from members.resources import MEMBER_COLUMNS, TagsWidget
from members.selectors import mobile_shown
from workspace.selectors import PERSONAL_DATA_PERMISSION

PERSONAL_FIELDS = ("name", "birthday")


EXPORT_COLUMNS = (*MEMBER_COLUMNS, "tags")


class MemberResource(resources.MemberResource):
    tags = fields.Field(attribute="tag_names", column_name="tags", widget=TagsWidget(), readonly=True)

    class Meta(resources.MemberResource.Meta):
        fields = EXPORT_COLUMNS
        export_order = EXPORT_COLUMNS

    def __init__(self, *, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user  # None (the export form's listing of the columns): nothing personal
        self.personal_data = user is not None and user.has_perm(PERSONAL_DATA_PERMISSION)

    def export_field(self, field, instance, **kwargs):
        name = self.get_field_name(field)
        if name == "mobile":
            if self.user is None:
                return mask_mobile(instance.mobile)
            return mobile_shown(user=self.user, mobile=instance.mobile, revealed=True)
        if name in PERSONAL_FIELDS and not self.personal_data:
            return ""
        return super().export_field(field, instance, **kwargs)

    def filter_export(self, queryset, **kwargs):
        names = MemberTag.objects.filter(member_id=OuterRef("pk"))
        if not self.personal_data:  # 生日月 tells the birth month the birthday column leaves blank
            names = names.exclude(rule__kind=TagRule.Kind.BIRTHDAY_MONTH)
        names = names.order_by("name").values("name")
        return super().filter_export(queryset, **kwargs).annotate(tag_names=ArraySubquery(names))
