"""My tasks: the follow-up tasks of the user's stores or assigned to them, open ones, due first."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import FollowUpTask
from tests.factories import FollowUpTaskFactory, MemberFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:campaigns_followuptask_changelist"


def due_in(days: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=days)


def test_staff_see_the_open_tasks_of_their_stores_and_their_own_due_first(client, make_user, stores):
    # given
    user = make_user("staff", stores.ours)
    later = FollowUpTaskFactory(member=stores.our_member, due_date=due_in(5), reason="later")
    overdue = FollowUpTaskFactory(member=MemberFactory(home_store=stores.ours), due_date=due_in(-2), reason="overdue")
    mine_elsewhere = FollowUpTaskFactory(member=stores.their_member, assignee=user, due_date=due_in(1), reason="mine")
    FollowUpTaskFactory(member=MemberFactory(home_store=stores.theirs), reason="theirs")
    FollowUpTaskFactory(
        member=stores.our_member,
        reason="done",
        status=FollowUpTask.Status.DONE,
        completed_at=timezone.now(),
    )
    client.force_login(user)
    # when
    response = client.get(reverse(CHANGELIST))
    everything = client.get(reverse(CHANGELIST), {"status": "all"})
    # then
    assert list(response.context["cl"].result_list) == [overdue, mine_elsewhere, later]
    assert {task.reason for task in everything.context["cl"].result_list} == {"later", "overdue", "mine", "done"}
    html = response.content.decode()
    assert reverse("admin:members_member_change", args=[stores.our_member.pk]) in html
    assert "138****2213" in html and "13800002213" not in html


def test_an_operator_sees_every_open_task(client, make_user, stores):
    FollowUpTaskFactory(member=stores.our_member)
    FollowUpTaskFactory(member=stores.their_member)
    client.force_login(make_user("operator"))
    assert len(client.get(reverse(CHANGELIST)).context["cl"].result_list) == 2


def test_another_stores_task_cannot_be_opened_or_marked_done(client, make_user, stores):
    # given
    theirs = FollowUpTaskFactory(member=stores.their_member)
    client.force_login(make_user("staff", stores.ours))
    # when
    page = client.get(reverse("admin:campaigns_followuptask_change", args=[theirs.pk]))
    done = client.post(reverse("admin:campaigns_followuptask_done", args=[theirs.pk]), {"outcome": "x"})
    # then
    assert page.status_code == 302  # the admin's "does not exist" redirect
    assert done.status_code == 403
    theirs.refresh_from_db()
    assert theirs.status == FollowUpTask.Status.OPEN


def test_a_task_page_shows_the_member_masked(client, make_user, stores):
    task = FollowUpTaskFactory(member=stores.our_member)
    client.force_login(make_user("staff", stores.ours))
    html = client.get(reverse("admin:campaigns_followuptask_change", args=[task.pk])).content.decode()
    assert "138****2213" in html and "13800002213" not in html


def test_the_index_leads_to_my_tasks_and_the_member_search(client, make_user, stores):
    client.force_login(make_user("staff", stores.ours))
    html = client.get(reverse("admin:index")).content.decode()
    assert f'id="workspace-my-tasks" href="{reverse(CHANGELIST)}"' in html
    assert f'action="{reverse("admin:members_member_changelist")}"' in html
