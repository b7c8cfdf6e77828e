"""The foundation boots: pages answer, the API answers in Stripe's shape."""

import pytest


@pytest.mark.django_db
def test_healthz_answers_200(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Request-Id"].startswith("req_")
