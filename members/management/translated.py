"""Management commands whose help is translatable."""

from django.core.management.base import BaseCommand


class TranslatedHelpCommand(BaseCommand):
    """A command whose ``help`` is a lazy translation (``gettext_lazy``): argparse formats the
    description with regular expressions, which want a string — ``--help`` would crash."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        if self.help:
            self.help = str(self.help)
        return super().create_parser(prog_name, subcommand, **kwargs)
