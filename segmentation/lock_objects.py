"""Every row lock of the segmentation app, in one place (see ``members.lock_objects`` for the
order: member first). Call these inside ``transaction.atomic``."""

from members.lock_objects import MEMBER_LOCK
from members.models import Member
from segmentation.models import RfmRun


def member_lock_with_current_run(*, cursor, member_id: int) -> tuple[bool, int | None]:
    """Lock the member's row (so that two refreshes of one member never interleave) and return
    whether the member exists and the id of the current RFM run (None when nothing was computed
    yet). Raw SQL: this is on the per-order path, where every round trip counts."""
    # SQLite has no row locks: its transactions take the whole database for writing instead.
    for_update = MEMBER_LOCK if cursor.db.features.has_select_for_update else ""
    cursor.execute(
        f"SELECT (SELECT r.id FROM {RfmRun._meta.db_table} r WHERE r.is_current) "  # noqa: S608
        f"FROM {Member._meta.db_table} m WHERE m.id = %s{for_update}",
        [member_id],
    )
    row = cursor.fetchone()
    return (True, row[0]) if row else (False, None)
