"""Imports uploaded in the admin run as jobs in the worker (eagerly here): the page follows their
progress without a reload, then shows the result; bad rows are a downloadable CSV error report;
progress is committed while the import's own transaction is still open."""

import csv
import io

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.urls import reverse

from members.models import ImportJob, Member, Order
from members.services import import_jobs
from members.services.import_jobs import error_report_path, import_job_create, import_job_run, upload_path
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db

ORDERS = "order_id,member_mobile,store_code,paid_at,amount\n"


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def shop():
    store = StoreFactory(code="S001")
    return {"store": store, "member": MemberFactory(mobile="13800138000")}


def upload(client, model: str, text: str, *, encoding="utf-8", historical=False, follow=True):
    data = {"import_file": SimpleUploadedFile("file.csv", text.encode(encoding), content_type="text/csv")}
    if historical:
        data["historical"] = "on"
    return client.post(reverse(f"admin:members_{model}_import"), data, follow=follow)


def orders_text(count: int, *, start: int = 0) -> str:
    rows = [f"J-{index},13800138000,S001,2024-05-01 12:{index % 60:02d},{10 + index % 7}.50" for index in range(count)]
    return ORDERS + "\n".join(rows[start:]) + "\n"


def test_an_upload_becomes_a_job_checked_by_the_worker_then_imported_on_confirm(staff_client, shop):
    # when: the upload
    checked = upload(staff_client, "order", orders_text(3), follow=False)
    job = ImportJob.objects.get()
    page = staff_client.get(checked["Location"])
    # then: the check ran (eagerly) and wrote nothing
    assert checked.status_code == 302
    assert checked["Location"] == reverse("admin:members_order_import_job", args=[job.pk])
    assert (job.kind, job.phase, job.status, job.rows_total, job.rows_done) == ("orders", "check", "succeeded", 3, 3)
    assert Order.objects.count() == 0
    assert page.context["confirm_form"] is not None
    assert "3 rows: 3 new, 0 unchanged, 0 updated." in page.content.decode()
    # when: confirmed
    confirmed = staff_client.post(
        reverse("admin:members_order_import"), {**page.context["confirm_form"].initial, "confirm": "1"}, follow=True
    )
    # then
    job.refresh_from_db()
    assert (job.phase, job.status, job.created) == ("import", "succeeded", 3)
    assert Order.objects.count() == 3
    assert "Import finished: file.csv. 3 created" in confirmed.context["summary"]
    assert LogEntry.objects.get().change_message.startswith("Import finished: file.csv. 3 created")
    assert not upload_path(job).exists()  # the upload is not kept once imported
    # and a second confirm of the same job imports nothing more
    again = staff_client.post(reverse("admin:members_order_import"), {"job": job.pk, "confirm": "1"})
    assert again.status_code == 302 and Order.objects.count() == 3


def test_bad_rows_are_a_downloadable_error_report_with_line_column_and_message(staff_client, shop, monkeypatch):
    # given: the page lists two bad rows, the report has all
    monkeypatch.setattr(import_jobs, "KEPT_ERRORS", 2)
    text = (
        ORDERS + "A-1,13800138000,S001,2024-05-01 12:00,10.00\n"
        "A-2,13999999999,S001,2024-05-01 12:00,10.00\n"
        "A-3,13800138000,NOPE,yesterday,10.001\n"
        "A-4,=1+1,S001,2024-05-01 12:00,10.00\n"
    )
    # when
    page = upload(staff_client, "order", text)
    job = page.context["job"]
    report = staff_client.get(reverse("admin:members_order_import_job_errors", args=[job.pk]))
    # then
    assert job.status == "failed" and job.error_count == 3
    assert page.context["confirm_form"] is None
    body = page.content.decode()
    assert "line 3: member_mobile: No member has the mobile number 13999999999." in body
    assert "3 bad rows in all: the error report lists every one." in body
    assert report.status_code == 200
    assert report["Content-Type"] == "text/csv"
    assert 'filename="file-errors.csv"' in report["Content-Disposition"]
    content = b"".join(report.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0] == ["line", "column", "message"]
    assert rows[1] == ["3", "member_mobile", "No member has the mobile number 13999999999."]
    assert [row[:2] for row in rows[2:5]] == [["4", "store_code"], ["4", "paid_at"], ["4", "amount"]]
    assert rows[5][:2] == ["5", "member_mobile"]
    assert Order.objects.count() == 0


def test_a_file_without_the_required_columns_is_refused_at_once(staff_client, shop):
    # when
    response = upload(staff_client, "order", "order_id,amount\nA-1,10.00\n")
    # then
    assert "Missing required column(s)" in response.context["form"].errors["import_file"][0]
    assert ImportJob.objects.count() == 0


def test_a_gbk_members_file_is_read_through_the_job(staff_client):
    StoreFactory(code="S001")
    text = "手机号,姓名,性别,注册时间,门店编码\n13800138000,王芳,女,2023-01-02,S001\n"
    page = upload(staff_client, "member", text, encoding="gbk")
    job = page.context["job"]
    staff_client.post(reverse("admin:members_member_import"), {"job": job.pk, "confirm": "1"})
    job.refresh_from_db()
    assert (job.encoding, job.status, job.phase) == ("gb18030", "succeeded", "import")
    assert Member.objects.get().name == "王芳"


def test_importing_the_same_file_again_changes_nothing(staff_client, shop):
    text = orders_text(4)
    first = upload(staff_client, "order", text)
    staff_client.post(reverse("admin:members_order_import"), {"job": first.context["job"].pk, "confirm": "1"})
    # when
    again = upload(staff_client, "order", text)
    # then
    job = again.context["job"]
    assert (job.created, job.unchanged) == (0, 4)
    assert Order.objects.count() == 4


def test_the_page_polls_while_the_job_runs_and_stops_when_it_is_done(
    staff_client, shop, django_user_model, django_assert_max_num_queries
):
    # given: a job the worker has not taken yet
    job = import_job_create(
        kind="orders",
        upload=SimpleUploadedFile("queued.csv", orders_text(2).encode()),
        historical=True,
        user=django_user_model.objects.get(username="operator"),
    )
    status_url = reverse("admin:members_order_import_job_status", args=[job.pk])
    # when
    with django_assert_max_num_queries(6):
        waiting = staff_client.get(status_url).content.decode()
    import_job_run(job_id=job.pk)
    done = staff_client.get(status_url).content.decode()
    # then
    assert f'hx-get="{status_url}"' in waiting and 'hx-trigger="load delay:1s"' in waiting
    assert "Waiting for the worker…" in waiting
    assert "hx-get" not in done and 'data-status="succeeded"' in done
    # and the task is idempotent: a second delivery does nothing
    assert import_job_run(job_id=job.pk) is None


def test_another_users_job_is_not_theirs_to_see_or_confirm(staff_client, shop, client, django_user_model):
    page = upload(staff_client, "order", orders_text(2))
    job = page.context["job"]
    other = django_user_model.objects.create_user("other-clerk", password="pw-other-1", is_staff=True)
    for codename in ("add_order", "view_order"):
        other.user_permissions.add(Permission.objects.get(content_type__app_label="members", codename=codename))
    client.force_login(other)
    # when
    seen = client.get(reverse("admin:members_order_import_job", args=[job.pk]))
    confirmed = client.post(reverse("admin:members_order_import"), {"job": job.pk, "confirm": "1"})
    # then
    assert seen.status_code == 403
    assert confirmed.status_code == 302
    assert Order.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_progress_is_committed_while_the_imports_transaction_is_still_open(django_user_model, monkeypatch):
    """Another connection (the web process) sees the rows handled grow while the orders the
    import writes are not visible yet: progress is written on a connection of its own."""
    StoreFactory(code="S001")
    MemberFactory(mobile="13800138000")
    user = django_user_model.objects.create_user("uploader", password="pw-uploader-1", is_staff=True)
    monkeypatch.setattr(import_jobs, "LOYALTY_BATCH_SIZE", 10)
    job = import_job_create(
        kind="orders", upload=SimpleUploadedFile("big.csv", orders_text(35).encode()), historical=False, user=user
    )
    ImportJob.objects.filter(pk=job.pk).update(phase="import")  # straight to the import, as after a check
    seen: list[tuple[int, int]] = []
    default = connections["default"]
    web = default.__class__(dict(default.settings_dict), alias="web")
    original = import_jobs._ProgressWriter.on_rows

    def watched(writer, rows):
        original(writer, rows)
        with web.cursor() as cursor:
            cursor.execute("SELECT rows_done FROM members_importjob WHERE id = %s", [job.pk])
            progress = cursor.fetchone()[0]
            cursor.execute("SELECT COUNT(*) FROM members_order")
            seen.append((progress, cursor.fetchone()[0]))

    monkeypatch.setattr(import_jobs._ProgressWriter, "on_rows", watched)
    try:
        # when
        finished = import_job_run(job_id=job.pk)
    finally:
        web.close()
    # then
    assert finished.status == "succeeded" and Order.objects.count() == 35
    assert seen == [(10, 0), (20, 0), (30, 0), (35, 0)]
    assert (finished.rows_done, finished.rows_total, finished.percent) == (35, 35, 100)
    assert not error_report_path(finished).exists()
