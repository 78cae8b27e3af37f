"""Follow-up tasks: created once per key for the member's home store, completed with an outcome,
and worked through in the admin's to-do list."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import FollowUpTask
from campaigns.services.followups import followup_cancel, followup_complete, followup_create
from tests.factories import MemberFactory, StoreFactory

Status = FollowUpTask.Status


def task_for(member, key, **fields):
    return followup_create(
        member=member,
        reason=fields.pop("reason", "Call about the win-back coupon"),
        due_date=fields.pop("due_date", timezone.localdate() + dt.timedelta(days=2)),
        dedupe_key=key,
        **fields,
    )


@pytest.mark.django_db
def test_a_task_is_created_once_per_key_for_the_home_store():
    # given
    store = StoreFactory(code="S-SH1")
    member = MemberFactory(home_store=store)
    # when
    first = task_for(member, "trigger:1:task")
    second = task_for(member, "trigger:1:task", reason="something else")
    # then
    assert first.pk == second.pk
    assert FollowUpTask.objects.count() == 1
    assert second.store == store
    assert second.reason == "Call about the win-back coupon"
    assert second.status == Status.OPEN


@pytest.mark.django_db
def test_another_store_can_be_given():
    member = MemberFactory()
    other = StoreFactory(code="S-BJ1")
    assert task_for(member, "k", store=other).store == other


@pytest.mark.django_db
def test_completing_records_the_outcome_and_who_once(django_user_model):
    # given
    staff = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    other = django_user_model.objects.create_user("other", password="pw-other-1", is_staff=True)
    task = task_for(MemberFactory(), "k")
    # when
    followup_complete(task=task, outcome="Reached; will come on Saturday", actor=staff)
    followup_complete(task=task, outcome="second click", actor=other)
    # then
    task.refresh_from_db()
    assert task.status == Status.DONE
    assert task.outcome == "Reached; will come on Saturday"
    assert task.completed_by == staff
    assert task.completed_at is not None


@pytest.mark.django_db
def test_a_cancelled_task_cannot_be_completed(admin_user):
    task = task_for(MemberFactory(), "k")
    followup_cancel(task=task, actor=admin_user, note="member moved away")
    with pytest.raises(ValidationError):
        followup_complete(task=task, outcome="done", actor=admin_user)
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert task.outcome == "member moved away"


# --- the admin's to-do list --------------------------------------------------------------------


@pytest.fixture
def tasks(staff_client, django_user_model):
    me = django_user_model.objects.get(username="operator")
    colleague = django_user_model.objects.create_user("colleague", password="pw-colleague-1", is_staff=True)
    stores = [StoreFactory(code=f"S-T{i}") for i in range(3)]
    made = []
    for index in range(9):
        member = MemberFactory(home_store=stores[index % 3])
        assignee = (me, colleague, None)[index % 3]
        made.append(
            task_for(member, f"k-{index}", assignee=assignee, due_date=timezone.localdate() - dt.timedelta(days=1))
        )
    return made


@pytest.mark.django_db
def test_the_todo_list_filters_mine_with_bounded_queries(staff_client, tasks, django_assert_max_num_queries):
    # when
    with django_assert_max_num_queries(12):
        response = staff_client.get("/admin/campaigns/followuptask/", {"assignee": "me", "status__exact": "open"})
    # then only my three open tasks are listed, overdue ones flagged
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('name="_selected_action"') == 3
    assert "color:#c62828" in page
    # and the query count does not grow with the list
    for index in range(10):
        task_for(MemberFactory(), f"more-{index}", assignee=tasks[0].assignee)
    with django_assert_max_num_queries(12):
        response = staff_client.get("/admin/campaigns/followuptask/", {"assignee": "me"})
    assert response.content.decode().count('name="_selected_action"') == 13


@pytest.mark.django_db
def test_mark_done_from_the_row_link(staff_client, tasks):
    # given
    task = tasks[0]
    page = staff_client.get(f"/admin/campaigns/followuptask/{task.pk}/done/")
    assert page.status_code == 200
    # when
    response = staff_client.post(f"/admin/campaigns/followuptask/{task.pk}/done/", {"outcome": "Reached, happy"})
    # then
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == Status.DONE
    assert task.outcome == "Reached, happy"
    assert task.completed_by.username == "operator"


@pytest.mark.django_db
def test_mark_done_action_asks_for_the_outcome_then_completes_all(staff_client, tasks):
    selected = [str(task.pk) for task in tasks[:3]]
    # when the action is chosen, a page asks for the outcome
    response = staff_client.post(
        "/admin/campaigns/followuptask/", {"action": "mark_done", "_selected_action": selected}
    )
    assert response.status_code == 200
    assert "Outcome" in response.content.decode()
    assert FollowUpTask.objects.filter(status=Status.DONE).count() == 0
    # when it is given
    response = staff_client.post(
        "/admin/campaigns/followuptask/",
        {"action": "mark_done", "_selected_action": selected, "apply": "1", "outcome": "Called all three"},
    )
    # then
    assert response.status_code == 302
    assert set(FollowUpTask.objects.filter(status=Status.DONE).values_list("outcome", flat=True)) == {
        "Called all three"
    }
    assert FollowUpTask.objects.filter(status=Status.DONE).count() == 3


@pytest.mark.django_db
def test_a_task_added_by_hand_gets_a_key_and_the_home_store(staff_client):
    store = StoreFactory(code="S-HAND")
    member = MemberFactory(home_store=store)
    response = staff_client.post(
        "/admin/campaigns/followuptask/add/",
        {"member": member.pk, "reason": "Birthday call", "due_date": timezone.localdate().isoformat(), "outcome": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    task = FollowUpTask.objects.get()
    assert task.store == store
    assert task.dedupe_key.startswith("admin:")
    # and the admin's history names the task it added
    from django.contrib.admin.models import ADDITION, LogEntry

    entry = LogEntry.objects.get(action_flag=ADDITION)
    assert entry.object_id == str(task.pk)


@pytest.mark.django_db
def test_tasks_added_by_hand_are_never_merged_and_keep_the_chosen_store(staff_client):
    # given
    home, other = StoreFactory(code="S-HOME"), StoreFactory(code="S-OTHER")
    member = MemberFactory(home_store=home)
    data = {"member": member.pk, "reason": "Birthday call", "due_date": timezone.localdate().isoformat()}
    # when the same task is added twice, the second for another store
    first = staff_client.post("/admin/campaigns/followuptask/add/", data)
    second = staff_client.post("/admin/campaigns/followuptask/add/", {**data, "store": other.pk})
    # then both exist, each for its store
    assert (first.status_code, second.status_code) == (302, 302)
    assert sorted(FollowUpTask.objects.values_list("store__code", flat=True)) == ["S-HOME", "S-OTHER"]
    assert len(set(FollowUpTask.objects.values_list("dedupe_key", flat=True))) == 2
