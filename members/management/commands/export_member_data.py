"""``export_member_data MOBILE FILE``: write everything held about a member as JSON (PIPL access request)."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from members.selectors import member_get_by_mobile
from members.services.privacy import member_data_export


class Command(BaseCommand):
    help = "Write a member's personal data (profile, orders, ledgers and every other record) to FILE as JSON."

    def add_arguments(self, parser):
        parser.add_argument("mobile", help="The member's mobile number, in any spelling.")
        parser.add_argument("file", help="Where to write the JSON ('-' for standard output).")

    def handle(self, *args, mobile, file, **options):
        member = member_get_by_mobile(mobile=mobile)
        if member is None:
            raise CommandError(f"No member has the mobile number {mobile}.")
        text = json.dumps(member_data_export(member_id=member.pk), cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
        if file == "-":
            self.stdout.write(text)
            return
        with open(file, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        self.stderr.write(f"Wrote the data of member {member.pk} to {file}.")
