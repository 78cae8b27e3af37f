"""``erase_member MOBILE --yes``: erase a member's personal data for good (PIPL deletion request).

Idempotent: once erased, the mobile number names no one, and running the command again reports that
there is nothing (left) to erase and succeeds. ``--id`` names the member by id instead (an erased
member keeps their id). See ``members.services.privacy`` for what is erased and what is kept."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from members.models import Member
from members.selectors import member_get_by_mobile
from members.services.privacy import member_erase


class Command(BaseCommand):
    help = "Erase a member's personal data (irreversible): the member stays, anonymised; money and points history stay."

    def add_arguments(self, parser):
        parser.add_argument("mobile", nargs="?", help="The member's mobile number, in any spelling.")
        parser.add_argument("--id", type=int, dest="member_id", help="The member's id instead of the mobile number.")
        parser.add_argument("--yes", action="store_true", help="Confirm: erasure cannot be undone.")

    def handle(self, *args, mobile=None, member_id=None, yes=False, **options):
        if bool(mobile) == bool(member_id):
            raise CommandError("Name the member by MOBILE or by --id (one of them).")
        if not yes:
            raise CommandError("Erasure cannot be undone: add --yes to confirm.")
        member = member_get_by_mobile(mobile=mobile) if mobile else Member.objects.filter(pk=member_id).first()
        if member is None:
            self.stdout.write(
                "No member has this mobile number or id (already erased, or never registered): nothing to do."
            )
            return
        was_erased = member.erased_at is not None
        try:
            member = member_erase(member=member)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if was_erased:
            self.stdout.write(f"Member {member.pk} was already erased on {member.erased_at:%Y-%m-%d}: nothing to do.")
        else:
            self.stdout.write(f"Erased the personal data of member {member.pk}.")
