"""The member export as each role may see it (PRODUCT.md, *Roles and personal data*).

``MemberResource`` is ``members.resources.MemberResource`` told who exports: mobiles are masked
(``138****8000``) for a user without ``members.view_full_mobile``, names and birthdays blank for one
without ``members.view_personal_data`` (analysts). The rows are the admin list's, so the store
scope and the search apply as well. The class keeps its name, so that the export form's fields
(``memberresource_mobile``…) stay what scripts and tests post.
"""

from members import resources
from members.mobile import mask_mobile
from members.selectors import mobile_shown
from workspace.selectors import PERSONAL_DATA_PERMISSION

PERSONAL_FIELDS = ("name", "birthday")


class MemberResource(resources.MemberResource):
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
