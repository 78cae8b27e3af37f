"""The staff workspace in the admin (issue #16): the member admin, the follow-up tasks and the
stores as store staff, managers, operators and analysts use them, one module each.

These replace the registrations of the apps below (``members``, ``campaigns``), whose admin
modules Django has loaded by then: ``workspace`` comes after them in ``INSTALLED_APPS``. The admin
index opens with the counter's search and the user's tasks (``admin/workspace/index.html``).
"""

from django.contrib import admin

from workspace.admin import followups, members, staff, system  # noqa: F401

admin.site.index_template = "admin/workspace/index.html"
