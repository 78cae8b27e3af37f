"""The staff workspace in the admin (issue #16): the member admin, the follow-up tasks and the
stores as store staff, managers, operators and analysts use them, one module each.

These replace the registrations of the apps below (``members``, ``campaigns``), whose admin
modules Django has loaded by then: ``workspace`` comes after them in ``INSTALLED_APPS``. The admin
index opens with the counter's search and the user's tasks (``admin/workspace/index.html``) —
for operators, analysts and superusers with the dashboard (``workspace.admin.dashboard``, called
by unfold through ``UNFOLD["DASHBOARD_CALLBACK"]``).
"""

from django.contrib import admin

from workspace.admin import dashboard, followups, members, reports, staff, system, tag_rules  # noqa: F401

admin.site.index_template = "admin/workspace/index.html"

# The dashboard's recompute button and its status box (``workspace.admin.dashboard``) and the
# operators' reports (``workspace.admin.reports``), beside any
# other page registered on the site itself (unfold's ``extra_urls`` hook).
_other_urls = getattr(admin.site, "extra_urls", None)


def _extra_urls() -> list:
    return [*dashboard.dashboard_urls(), *reports.report_urls(), *(_other_urls() if callable(_other_urls) else [])]


admin.site.extra_urls = _extra_urls
