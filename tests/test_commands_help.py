"""Every command of the project prints its ``--help`` (in English and in Chinese): operators read
it before they run an import."""

import pytest
from django.core.management import get_commands, load_command_class
from django.utils import translation

PROJECT_APPS = ("members", "segmentation", "campaigns", "workspace", "audit", "demo", "config")


def project_commands() -> list[tuple[str, str]]:
    return sorted((name, app) for name, app in get_commands().items() if app.split(".")[0] in PROJECT_APPS)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_command_formats_its_help(language):
    commands = project_commands()
    assert len(commands) > 10
    with translation.override(language):
        for name, app in commands:
            command = load_command_class(app, name)
            text = command.create_parser("manage.py", name).format_help()
            assert name in text and "--help" in text, name
