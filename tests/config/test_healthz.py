import pytest


@pytest.mark.django_db
def test_healthz_reports_ok_when_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_reports_a_stopped_broker_as_503(client, settings):
    # given: a broker URL where nothing listens
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_CONNECTION_TIMEOUT = 1
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == "ok"
    assert body["broker"].startswith("error")
