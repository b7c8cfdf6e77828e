"""The role matrix: who reaches which page, and the rules in `accounts.roles`.

Staff (admin, operator, viewer) see every merchant; merchant users see their
own merchant only, and another merchant's page is a 404 for them, never a
403. Only the admin role reaches the Django admin.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts import roles
from tests.conftest import logged_in

USERS = ["admin_user", "operator_user", "viewer_user", "owner_a", "developer_a", "viewer_a"]
STAFF = {"admin_user", "operator_user", "viewer_user"}


@pytest.fixture
def cast(request, merchant_a, merchant_b):
    """Every user of the matrix, by fixture name, with both merchants present."""
    return {name: request.getfixturevalue(name) for name in USERS}


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("admin_user", 200),
        ("operator_user", 200),
        ("viewer_user", 200),
        ("owner_a", 403),
        ("developer_a", 403),
        ("viewer_a", 403),
    ],
)
def test_staff_page(cast, user, expected):
    response = logged_in(cast[user]).get("/accounts/merchants/")

    assert response.status_code == expected


@pytest.mark.parametrize("user", USERS)
def test_merchant_page_of_own_merchant(cast, merchant_a, user):
    response = logged_in(cast[user]).get(f"/accounts/merchants/{merchant_a.merchant.pk}/keys/")

    assert response.status_code == 200
    assert "Merchant A" in response.content.decode()


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("admin_user", 200),
        ("operator_user", 200),
        ("viewer_user", 200),
        ("owner_a", 404),
        ("developer_a", 404),
        ("viewer_a", 404),
    ],
)
def test_merchant_page_of_another_merchant(cast, merchant_b, user, expected):
    response = logged_in(cast[user]).get(f"/accounts/merchants/{merchant_b.merchant.pk}/keys/")

    assert response.status_code == expected
    if expected == 404:
        assert "Merchant B" not in response.content.decode()


@pytest.mark.parametrize("user", USERS)
def test_merchant_page_of_a_merchant_that_does_not_exist(cast, user):
    assert logged_in(cast[user]).get("/accounts/merchants/999999/keys/").status_code == 404


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("admin_user", 200),
        ("operator_user", 302),
        ("viewer_user", 302),
        ("owner_a", 302),
        ("developer_a", 302),
        ("viewer_a", 302),
    ],
)
def test_django_admin(cast, user, expected):
    response = logged_in(cast[user]).get("/admin/")

    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("user", USERS)
def test_overview_answers_every_role(cast, user):
    assert logged_in(cast[user]).get("/").status_code == 200


@pytest.mark.parametrize(
    ("user", "lands_on"),
    [
        ("admin_user", "/accounts/merchants/"),
        ("viewer_user", "/accounts/merchants/"),
        ("owner_a", "/accounts/merchants/{a}/keys/"),
        ("viewer_a", "/accounts/merchants/{a}/keys/"),
    ],
)
def test_api_keys_link_lands_on_what_the_user_may_see(cast, merchant_a, user, lands_on):
    response = logged_in(cast[user]).get("/accounts/keys/")

    assert response.status_code == 302
    assert response["Location"] == lands_on.format(a=merchant_a.merchant.pk)


@pytest.mark.parametrize(
    ("url", "login"),
    [
        ("/", "/accounts/login/?next=/"),
        ("/accounts/merchants/", "/accounts/login/?next=/accounts/merchants/"),
        ("/accounts/merchants/1/keys/", "/accounts/login/?next=/accounts/merchants/1/keys/"),
        ("/accounts/keys/", "/accounts/login/?next=/accounts/keys/"),
        ("/accounts/password/", "/accounts/login/?next=/accounts/password/"),
        ("/admin/", "/admin/login/?next=/admin/"),
    ],
)
@pytest.mark.django_db
def test_anonymous_is_sent_to_log_in(client, url, login):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == login


# --- accounts.roles ---------------------------------------------------------

ANONYMOUS = "anonymous"


def _user(cast, name):
    return AnonymousUser() if name == ANONYMOUS else cast[name]


@pytest.mark.parametrize(
    ("user", "staff", "admin", "operate", "manage_keys", "view_keys"),
    [
        ("admin_user", True, True, True, True, True),
        ("operator_user", True, False, True, False, True),
        ("viewer_user", True, False, False, False, True),
        ("owner_a", False, False, True, True, True),
        ("developer_a", False, False, True, False, True),
        ("viewer_a", False, False, False, False, True),
        (ANONYMOUS, False, False, False, False, False),
    ],
)
def test_role_rules(cast, user, staff, admin, operate, manage_keys, view_keys):
    subject = _user(cast, user)

    assert roles.is_staff_member(subject) is staff
    assert roles.can_access_admin(subject) is admin
    assert roles.can_operate(subject) is operate
    assert roles.can_manage_keys(subject) is manage_keys
    assert roles.can_view_keys(subject) is view_keys
    assert roles.any_role(subject) is (user != ANONYMOUS)


@pytest.mark.parametrize("user", USERS)
def test_only_the_admin_role_is_django_staff(cast, user):
    assert cast[user].is_staff is (user == "admin_user")


@pytest.mark.parametrize("user", USERS)
def test_merchant_scope(cast, merchant_a, user):
    expected = None if user in STAFF else merchant_a.merchant.pk

    assert roles.merchant_scope(cast[user]) == expected


@pytest.mark.parametrize(
    ("user", "own", "other"),
    [
        ("admin_user", True, True),
        ("operator_user", True, True),
        ("viewer_user", True, True),
        ("owner_a", True, False),
        ("developer_a", True, False),
        ("viewer_a", True, False),
        (ANONYMOUS, False, False),
    ],
)
def test_can_view_merchant(cast, merchant_a, merchant_b, user, own, other):
    subject = _user(cast, user)

    assert roles.can_view_merchant(subject, merchant_a.merchant.pk) is own
    assert roles.can_view_merchant(subject, merchant_b.merchant.pk) is other


@pytest.mark.parametrize(
    ("user", "own", "other"),
    [
        ("admin_user", True, True),
        ("operator_user", True, True),
        ("viewer_user", False, False),
        ("owner_a", True, False),
        ("developer_a", True, False),
        ("viewer_a", False, False),
    ],
)
def test_can_operate_on_a_merchant(cast, merchant_a, merchant_b, user, own, other):
    assert roles.can_operate(cast[user], merchant_a.merchant.pk) is own
    assert roles.can_operate(cast[user], merchant_b.merchant.pk) is other


@pytest.mark.parametrize(
    ("user", "own", "other"),
    [
        ("admin_user", True, True),
        ("operator_user", False, False),
        ("viewer_user", False, False),
        ("owner_a", True, False),
        ("developer_a", False, False),
        ("viewer_a", False, False),
    ],
)
def test_can_manage_keys_of_a_merchant(cast, merchant_a, merchant_b, user, own, other):
    assert roles.can_manage_keys(cast[user], merchant_a.merchant.pk) is own
    assert roles.can_manage_keys(cast[user], merchant_b.merchant.pk) is other


@pytest.mark.parametrize("user", USERS)
def test_a_deactivated_user_has_no_role(cast, merchant_a, user):
    subject = cast[user]
    subject.is_active = False

    assert not roles.any_role(subject)
    assert not roles.can_operate(subject)
    assert not roles.can_manage_keys(subject)
    assert not roles.can_view_merchant(subject, merchant_a.merchant.pk)
    assert not subject.is_staff
