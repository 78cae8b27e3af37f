"""Who made a change: the audit trail's context (``pghistory.context``) for each write request of a
signed-in staff user — in the admin, or a staff API on the admin's session.

The context (the user's id and name, the path) is attached to every event the request's statements
cause. Reads are left alone, and so are the requests of members and store keys (no staff user):
the triggers still record what those change, with no user.
"""

import pghistory

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method not in WRITES:
            return self.get_response(request)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return self.get_response(request)
        with pghistory.context(user=user.pk, username=user.get_username(), url=request.path):
            return self.get_response(request)
