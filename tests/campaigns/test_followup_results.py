"""What came of a follow-up task (``FollowUpResult``), written at the head of its outcome."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from campaigns.models import FollowUpTask
from campaigns.services.followups import FollowUpResult, followup_complete
from tests.factories import FollowUpTaskFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def test_the_result_is_written_in_the_brands_language_whoever_records_it(settings):
    # given: a brand in Chinese, a clerk using the admin in English
    settings.LANGUAGE_CODE = "zh-hans"
    task = FollowUpTaskFactory()
    # when
    with translation.override("en"):
        followup_complete(task=task, outcome="周六来店", result=FollowUpResult.REACHED, actor=StaffUserFactory())
    # then
    task.refresh_from_db()
    assert (task.status, task.outcome) == (FollowUpTask.Status.DONE, "已联系上: 周六来店")


def test_a_result_without_a_note_is_the_outcome():
    task = FollowUpTaskFactory()
    followup_complete(task=task, outcome="", result=FollowUpResult.DECLINED, actor=None)
    task.refresh_from_db()
    assert task.outcome == "Declined"


def test_an_unknown_result_is_refused_and_the_task_stays_open():
    task = FollowUpTaskFactory()
    with pytest.raises(ValidationError) as error:
        followup_complete(task=task, outcome="", result="maybe", actor=None)
    assert "result" in error.value.message_dict
    task.refresh_from_db()
    assert task.status == FollowUpTask.Status.OPEN
