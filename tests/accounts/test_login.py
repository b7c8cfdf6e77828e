"""Login, logout, password change, and the lockout that follows repeated failures.

Lockout is django-axes keyed on (account, IP): after AXES_FAILURE_LIMIT
failures the pair is refused, even with the right password, until the
cool-off period has passed since the last failure.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.db.models import F
from django.test import Client

from tests.conftest import PASSWORD

LOGIN_URL = "/accounts/login/"
ATTACKER_IP = "203.0.113.7"
OTHER_IP = "198.51.100.23"


def _login(client: Client, email: str, password: str, ip: str = ATTACKER_IP):
    return client.post(LOGIN_URL, {"username": email, "password": password}, REMOTE_ADDR=ip)


def _fail(email: str, times: int, ip: str = ATTACKER_IP) -> None:
    for _ in range(times):
        _login(Client(), email, "wrong password", ip)


def _is_logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _move_clock_past_cooloff(minus: timedelta = timedelta(0)) -> None:
    """Age every recorded attempt, as if the cool-off period (minus `minus`) had passed.

    django-axes counts the failures whose `attempt_time` is within
    AXES_COOLOFF_TIME of the current attempt, so ageing the rows is the
    same as moving the clock forward.
    """
    shift = settings.AXES_COOLOFF_TIME + timedelta(seconds=1) - minus
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - shift)


@pytest.mark.django_db
def test_login_page_looks_like_the_product(client):
    response = client.get(LOGIN_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "css/paylab.css" in html
    assert "PayLab" in html
    assert 'name="username"' in html
    assert 'type="email"' in html
    assert 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_login_with_email_and_password_lands_on_the_overview(operator_user):
    client = Client()

    response = _login(client, "operator@paylab.test", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert _is_logged_in(client)
    assert client.get("/").status_code == 200


def test_login_ignores_the_case_of_the_email(operator_user):
    client = Client()

    response = _login(client, "Operator@PayLab.TEST", PASSWORD)

    assert response.status_code == 302
    assert _is_logged_in(client)


def test_login_follows_a_local_next_url(viewer_user):
    client = Client()

    response = client.post(
        LOGIN_URL + "?next=/accounts/merchants/",
        {"username": "viewer@paylab.test", "password": PASSWORD, "next": "/accounts/merchants/"},
    )

    assert response["Location"] == "/accounts/merchants/"


def test_wrong_password_shows_the_form_again_with_an_error(operator_user):
    client = Client()

    response = _login(client, "operator@paylab.test", "not the password")

    assert response.status_code == 200
    assert b"alert-error" in response.content
    assert not _is_logged_in(client)


def test_logout_is_a_post_that_ends_the_session(operator_user):
    # Given a logged-in operator
    client = Client()
    _login(client, "operator@paylab.test", PASSWORD)

    # When they log out
    response = client.post("/accounts/logout/")

    # Then the session is gone and pages send them to the login page
    assert response.status_code == 302
    assert response["Location"] == LOGIN_URL
    assert not _is_logged_in(client)
    assert client.get("/")["Location"].startswith(LOGIN_URL)


def test_logout_by_get_is_refused(operator_user):
    client = Client()
    _login(client, "operator@paylab.test", PASSWORD)

    assert client.get("/accounts/logout/").status_code == 405
    assert _is_logged_in(client)


def test_password_change(operator_user):
    # Given a logged-in operator on the password page
    client = Client()
    _login(client, "operator@paylab.test", PASSWORD)
    page = client.get("/accounts/password/")
    assert page.status_code == 200
    assert b"css/paylab.css" in page.content
    assert b'name="old_password"' in page.content

    # When they change their password
    response = client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new passphrase 42",
            "new_password2": "a brand new passphrase 42",
        },
    )

    # Then they stay logged in, and only the new password works from now on
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/done/"
    assert client.get("/accounts/password/done/").status_code == 200
    assert _is_logged_in(client)
    assert _login(Client(), "operator@paylab.test", PASSWORD).status_code == 200
    assert _login(Client(), "operator@paylab.test", "a brand new passphrase 42").status_code == 302


def test_password_change_with_a_wrong_old_password_is_refused(operator_user):
    client = Client()
    _login(client, "operator@paylab.test", PASSWORD)

    response = client.post(
        "/accounts/password/",
        {
            "old_password": "not it",
            "new_password1": "a brand new passphrase 42",
            "new_password2": "a brand new passphrase 42",
        },
    )

    assert response.status_code == 200
    assert b"field-error" in response.content


@pytest.mark.django_db
def test_password_change_needs_a_login(client):
    response = client.get("/accounts/password/")

    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)


def test_failed_attempts_are_recorded(operator_user):
    _fail("operator@paylab.test", 2)

    attempt = AccessAttempt.objects.get()
    assert attempt.username == "operator@paylab.test"
    assert attempt.ip_address == ATTACKER_IP
    assert attempt.failures_since_start == 2
    assert (
        AccessFailureLog.objects.filter(
            username="operator@paylab.test", ip_address=ATTACKER_IP
        ).count()
        == 2
    )
    # The password tried is never stored.
    assert "wrong password" not in str(attempt.post_data)


def test_successful_logins_are_recorded(operator_user):
    _login(Client(), "operator@paylab.test", PASSWORD)

    assert AccessLog.objects.filter(
        username="operator@paylab.test", ip_address=ATTACKER_IP
    ).exists()


def test_lockout_refuses_the_right_password_after_the_failure_limit(operator_user):
    # Given as many failures as the limit, from one address
    assert settings.AXES_FAILURE_LIMIT == 5
    _fail("operator@paylab.test", settings.AXES_FAILURE_LIMIT)

    # When the right password is tried from that address
    client = Client()
    response = _login(client, "operator@paylab.test", PASSWORD)

    # Then the locked-out page shows and nobody is logged in
    assert response.status_code == 429
    assert b"Too many failed log-in attempts" in response.content
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    assert f"locked from your address for {minutes} minutes" in response.content.decode()
    assert b"css/paylab.css" in response.content
    assert not _is_logged_in(client)


def test_lockout_starts_exactly_at_the_limit(operator_user):
    _fail("operator@paylab.test", settings.AXES_FAILURE_LIMIT - 1)

    assert _login(Client(), "operator@paylab.test", PASSWORD).status_code == 302


def test_lockout_counts_spellings_of_one_email_together(operator_user):
    for spelling in ["operator@paylab.test", "OPERATOR@paylab.test", "Operator@PayLab.test"]:
        _fail(spelling, 2)

    assert _login(Client(), "operator@paylab.test", PASSWORD).status_code == 429


def test_lockout_is_per_address(operator_user):
    _fail("operator@paylab.test", settings.AXES_FAILURE_LIMIT)

    client = Client()
    response = _login(client, "operator@paylab.test", PASSWORD, ip=OTHER_IP)

    assert response.status_code == 302
    assert _is_logged_in(client)


def test_lockout_is_per_account(operator_user, viewer_user):
    _fail("operator@paylab.test", settings.AXES_FAILURE_LIMIT)

    assert _login(Client(), "viewer@paylab.test", PASSWORD).status_code == 302


def test_lockout_holds_until_the_cooloff_has_passed(operator_user):
    # Given a locked account+address
    _fail("operator@paylab.test", settings.AXES_FAILURE_LIMIT)

    # When most, but not all, of the cool-off period has passed
    _move_clock_past_cooloff(minus=timedelta(minutes=1))

    # Then it is still locked
    assert _login(Client(), "operator@paylab.test", PASSWORD).status_code == 429


def test_account_logs_in_again_after_the_cooloff(operator_user):
    # Given a locked account+address
    _fail("operator@paylab.test", settings.AXES_FAILURE_LIMIT)

    # When the cool-off period has passed
    _move_clock_past_cooloff()
    client = Client()
    response = _login(client, "operator@paylab.test", PASSWORD)

    # Then the right password works again and the failure count starts over
    assert response.status_code == 302
    assert _is_logged_in(client)
    assert not AccessAttempt.objects.filter(failures_since_start__gt=0).exists()
