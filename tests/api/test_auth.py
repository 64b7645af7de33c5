"""Sign-in, throttling, token storage, refresh rotation, sign-out and bearer authentication.

The service issues no JWTs: access and refresh tokens are opaque random strings (prefixes
"rta_" and "rtr_") that the database stores only as HMAC-SHA256 hashes. There is no header or
signature algorithm a client could choose, so "alg: none" and key-confusion attacks do not
apply; forged, tampered, expired and revoked tokens are tested instead.
"""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from api import security
from api.config import Settings
from models.audit import AuditEvent
from models.base import utc_now
from models.identity import AuthSession, AuthToken, LoginFailure, UserAccount
from tests.factories import PASSWORD, World, auth

PROBLEM_JSON = "application/problem+json"
OTHER_ADDRESS = "10.1.2.3"
THIRD_ADDRESS = "10.9.8.7"
MAX_FAILURES = 5


# --- helpers ---------------------------------------------------------------------------------


def login(client: TestClient, email: str | None, password: str = PASSWORD) -> httpx.Response:
    return client.post("/v1/auth/token", data={"username": email or "", "password": password})


def sign_in(client: TestClient, email: str | None) -> dict[str, str]:
    response = login(client, email)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def fail_logins(client: TestClient, email: str, times: int = MAX_FAILURES) -> None:
    for _ in range(times):
        response = login(client, email, "not the right password at all")
        assert response.status_code == 401, response.text


def me(client: TestClient, token: str) -> httpx.Response:
    return client.get("/v1/users/me", headers=auth(token))


def refresh(client: TestClient, refresh_token: str) -> httpx.Response:
    return client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


@contextmanager
def client_from(app: FastAPI, host: str) -> Iterator[TestClient]:
    """A client whose requests come from another address than the default "testclient"."""
    with TestClient(app, client=(host, 1234)) as other:
        yield other


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, object] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    assert body["status"] == status
    return body


def assert_throttled(response: httpx.Response) -> None:
    assert_problem(response, 429)
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60


def hash_of(settings: Settings, token: str) -> str:
    return security.keyed_hash(settings.secret_key.get_secret_value(), token)


def flip_one_char(token: str) -> str:
    i = len(token) - 5
    replacement = "A" if token[i] != "A" else "B"
    return token[:i] + replacement + token[i + 1 :]


# --- sign-in ---------------------------------------------------------------------------------


def test_login_with_good_credentials_returns_a_bearer_pair(
    client: TestClient, world: World
) -> None:
    response = login(client, world.clinician_a.email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert isinstance(body["refresh_token"], str)
    assert body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    assert isinstance(body["expires_in"], int)
    assert 0 < body["expires_in"] <= 900


def test_access_token_from_login_works_on_users_me(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    response = me(client, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(world.clinician_a.id)
    assert response.json()["role"] == "clinician"


def test_login_email_is_case_insensitive(client: TestClient, world: World) -> None:
    assert world.clinician_a.email is not None
    response = login(client, world.clinician_a.email.upper())
    assert response.status_code == 200, response.text


def test_login_with_wrong_password_is_401_problem(client: TestClient, world: World) -> None:
    response = login(client, world.clinician_a.email, "wrong password, quite long")
    body = assert_problem(response, 401)
    assert "access_token" not in body


def test_login_with_unknown_email_is_401_problem(client: TestClient, world: World) -> None:  # noqa: ARG001
    response = login(client, "nobody-here@example.org")
    assert_problem(response, 401)


def test_login_with_missing_password_is_422(client: TestClient, world: World) -> None:
    response = client.post("/v1/auth/token", data={"username": world.clinician_a.email})
    assert_problem(response, 422)


# --- throttling ------------------------------------------------------------------------------


def test_sixth_attempt_after_five_failures_is_429_even_with_right_password(
    client: TestClient, world: World
) -> None:
    fail_logins(client, world.clinician_a.email or "")
    assert_throttled(login(client, world.clinician_a.email))


def test_account_limit_applies_from_another_address(
    client: TestClient, world: World, app: FastAPI
) -> None:
    fail_logins(client, world.clinician_a.email or "")
    with client_from(app, OTHER_ADDRESS) as other:
        assert_throttled(login(other, world.clinician_a.email))


def test_address_limit_applies_across_accounts(client: TestClient, world: World) -> None:
    for i in range(MAX_FAILURES):
        response = login(client, f"unknown-{i}-{uuid.uuid4().hex[:6]}@example.org")
        assert response.status_code == 401, response.text
    assert_throttled(login(client, world.clinician_b.email))


def test_throttled_account_does_not_slow_other_users(
    client: TestClient, world: World, app: FastAPI
) -> None:
    fail_logins(client, world.clinician_a.email or "")
    assert_throttled(login(client, world.clinician_a.email))
    with client_from(app, OTHER_ADDRESS) as other:
        response = login(other, world.clinician_b.email)
    assert response.status_code == 200, response.text


def test_fewer_failures_than_the_limit_do_not_throttle(client: TestClient, world: World) -> None:
    fail_logins(client, world.clinician_a.email or "", MAX_FAILURES - 1)
    assert login(client, world.clinician_a.email).status_code == 200


def test_login_works_again_once_the_window_has_passed(
    client: TestClient, world: World, db: Session
) -> None:
    fail_logins(client, world.clinician_a.email or "")
    assert_throttled(login(client, world.clinician_a.email))
    db.exec(update(LoginFailure).values(at=utc_now() - timedelta(minutes=2)))
    db.commit()
    response = login(client, world.clinician_a.email)
    assert response.status_code == 200, response.text


def test_throttle_table_holds_no_email_or_address(
    client: TestClient, world: World, db: Session
) -> None:
    email = world.clinician_a.email or ""
    fail_logins(client, email, 2)
    rows = db.exec(select(LoginFailure)).all()
    assert rows
    for row in rows:
        stored = " ".join(str(v) for v in row.model_dump().values()).lower()
        assert email.lower() not in stored
        assert "testclient" not in stored


# --- password and token storage --------------------------------------------------------------


ARGON2ID = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[^$]+\$[^$]+$")


def test_password_hash_is_argon2id_with_owasp_parameters(
    client: TestClient, world: World, db: Session
) -> None:
    password = "a brand new passphrase for dr who"
    response = client.post(
        "/v1/users",
        headers=world.headers("admin"),
        json={
            "email": "new.clinician@example.org",
            "password": password,
            "role": "clinician",
            "clinic_id": str(world.clinic_a.id),
        },
    )
    assert response.status_code == 201, response.text
    user = db.get_one(UserAccount, uuid.UUID(response.json()["id"]))
    assert user.password_hash is not None
    assert password not in user.password_hash
    match = ARGON2ID.match(user.password_hash)
    assert match is not None, user.password_hash
    memory, time_cost, parallelism = (int(g) for g in match.groups())
    assert memory >= 19456
    assert time_cost >= 2
    assert parallelism == 1


def test_tokens_are_stored_only_as_hashes(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    rows = db.exec(select(AuthToken)).all()
    assert rows
    for row in rows:
        for value in row.model_dump().values():
            assert tokens["access_token"] not in str(value)
            assert tokens["refresh_token"] not in str(value)
    for raw in (tokens["access_token"], tokens["refresh_token"]):
        stored = db.exec(
            select(AuthToken).where(AuthToken.token_hash == hash_of(settings, raw))
        ).one()
        assert stored.token_hash != raw


def test_tokens_are_opaque_with_typed_prefixes(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    assert tokens["access_token"].startswith("rta_")
    assert tokens["refresh_token"].startswith("rtr_")
    assert tokens["access_token"].count(".") < 2  # not a JWT


# --- refresh ---------------------------------------------------------------------------------


def test_refresh_returns_a_new_working_pair(client: TestClient, world: World) -> None:
    old = sign_in(client, world.clinician_a.email)
    response = refresh(client, old["refresh_token"])
    assert response.status_code == 200, response.text
    new = response.json()
    assert new["token_type"] == "bearer"
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert 0 < new["expires_in"] <= 900
    assert me(client, new["access_token"]).status_code == 200
    assert refresh(client, new["refresh_token"]).status_code == 200


def test_rotated_refresh_token_is_refused(client: TestClient, world: World) -> None:
    old = sign_in(client, world.clinician_a.email)
    assert refresh(client, old["refresh_token"]).status_code == 200
    assert_problem(refresh(client, old["refresh_token"]), 401)


def test_reusing_a_rotated_refresh_token_revokes_the_family(
    client: TestClient, world: World
) -> None:
    old = sign_in(client, world.clinician_a.email)
    rotated = refresh(client, old["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert me(client, new["access_token"]).status_code == 200
    assert refresh(client, old["refresh_token"]).status_code == 401
    assert_problem(me(client, new["access_token"]), 401)
    assert_problem(refresh(client, new["refresh_token"]), 401)


def test_refresh_reuse_does_not_revoke_other_sign_ins(client: TestClient, world: World) -> None:
    first = sign_in(client, world.clinician_a.email)
    second = sign_in(client, world.clinician_a.email)
    assert refresh(client, first["refresh_token"]).status_code == 200
    assert refresh(client, first["refresh_token"]).status_code == 401
    assert me(client, second["access_token"]).status_code == 200


def test_expired_refresh_token_is_refused(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    db.exec(
        update(AuthToken)
        .where(col(AuthToken.token_hash) == hash_of(settings, tokens["refresh_token"]))
        .values(expires_at=utc_now() - timedelta(seconds=1))
    )
    db.commit()
    assert_problem(refresh(client, tokens["refresh_token"]), 401)


def test_refresh_with_unknown_token_is_401(client: TestClient, world: World) -> None:  # noqa: ARG001
    assert_problem(refresh(client, "rtr_" + uuid.uuid4().hex), 401)


def test_refresh_with_unknown_body_field_is_422(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    response = client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"], "role": "admin"}
    )
    assert_problem(response, 422)


# --- logout ----------------------------------------------------------------------------------


def test_logout_returns_204_and_the_access_token_stops_working(
    client: TestClient, world: World
) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    response = client.post("/v1/auth/logout", headers=auth(tokens["access_token"]))
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_problem(me(client, tokens["access_token"]), 401)


def test_logout_also_stops_the_refresh_token(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    assert client.post("/v1/auth/logout", headers=auth(tokens["access_token"])).status_code == 204
    assert_problem(refresh(client, tokens["refresh_token"]), 401)


def test_logout_ends_only_its_own_sign_in(client: TestClient, world: World) -> None:
    first = sign_in(client, world.clinician_a.email)
    second = sign_in(client, world.clinician_a.email)
    assert client.post("/v1/auth/logout", headers=auth(first["access_token"])).status_code == 204
    assert me(client, second["access_token"]).status_code == 200


def test_logout_without_token_is_401(client: TestClient, world: World) -> None:  # noqa: ARG001
    assert_problem(client.post("/v1/auth/logout"), 401)


# --- bearer authentication -------------------------------------------------------------------


def test_random_string_token_is_401(client: TestClient, world: World) -> None:  # noqa: ARG001
    assert_problem(me(client, uuid.uuid4().hex + uuid.uuid4().hex), 401)


def test_token_with_access_prefix_but_random_body_is_401(
    client: TestClient,
    world: World,  # noqa: ARG001
) -> None:
    assert_problem(me(client, security.new_token(security.ACCESS_PREFIX)), 401)


def test_tampered_token_is_401(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    tampered = flip_one_char(tokens["access_token"])
    assert tampered != tokens["access_token"]
    assert_problem(me(client, tampered), 401)
    assert me(client, tokens["access_token"]).status_code == 200


def test_expired_access_token_is_401(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    assert me(client, tokens["access_token"]).status_code == 200
    db.exec(
        update(AuthToken)
        .where(col(AuthToken.token_hash) == hash_of(settings, tokens["access_token"]))
        .values(expires_at=utc_now() - timedelta(seconds=1))
    )
    db.commit()
    assert_problem(me(client, tokens["access_token"]), 401)


def test_revoked_session_token_is_401(
    client: TestClient, world: World, db: Session, settings: Settings
) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    assert me(client, tokens["access_token"]).status_code == 200
    token = db.exec(
        select(AuthToken).where(AuthToken.token_hash == hash_of(settings, tokens["access_token"]))
    ).one()
    db.exec(
        update(AuthSession)
        .where(col(AuthSession.id) == token.session_id)
        .values(revoked_at=utc_now(), revoked_reason="test")
    )
    db.commit()
    assert_problem(me(client, tokens["access_token"]), 401)


def test_missing_authorization_is_401_with_bearer_challenge(
    client: TestClient,
    world: World,  # noqa: ARG001
) -> None:
    response = client.get("/v1/users/me")
    assert_problem(response, 401)
    assert response.headers.get("www-authenticate") == "Bearer"


def test_basic_scheme_is_401(client: TestClient, world: World) -> None:  # noqa: ARG001
    response = client.get("/v1/users/me", headers={"Authorization": "Basic xyz"})
    assert_problem(response, 401)
    assert response.headers.get("www-authenticate") == "Bearer"


def test_basic_scheme_carrying_a_valid_token_is_401(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    response = client.get(
        "/v1/users/me", headers={"Authorization": f"Basic {tokens['access_token']}"}
    )
    assert_problem(response, 401)


def test_refresh_token_used_as_access_token_is_401(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    assert_problem(me(client, tokens["refresh_token"]), 401)


def test_access_token_used_as_refresh_token_is_401(client: TestClient, world: World) -> None:
    tokens = sign_in(client, world.clinician_a.email)
    assert_problem(refresh(client, tokens["access_token"]), 401)
    assert me(client, tokens["access_token"]).status_code == 200


# --- audit -----------------------------------------------------------------------------------


def _login_audit_rows(db: Session) -> list[AuditEvent]:
    db.expire_all()
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == "auth.token")).all())


def test_successful_login_is_audited_as_allowed(
    client: TestClient, world: World, db: Session
) -> None:
    sign_in(client, world.clinician_a.email)
    rows = _login_audit_rows(db)
    assert len(rows) == 1
    assert rows[0].outcome == "allowed"
    assert rows[0].actor_id == world.clinician_a.id


def test_failed_login_is_audited_as_denied(client: TestClient, world: World, db: Session) -> None:
    response = login(client, world.clinician_a.email, "wrong password, quite long")
    assert response.status_code == 401
    rows = _login_audit_rows(db)
    assert len(rows) == 1
    assert rows[0].outcome == "denied"


def test_audit_rows_hold_no_token_or_password(
    client: TestClient, world: World, db: Session
) -> None:
    wrong = "wrong password, quite long"
    assert login(client, world.clinician_a.email, wrong).status_code == 401
    tokens = sign_in(client, world.clinician_a.email)
    assert refresh(client, tokens["refresh_token"]).status_code == 200
    db.expire_all()
    rows = db.exec(select(AuditEvent)).all()
    assert {row.action for row in rows} >= {"auth.token", "auth.refresh"}
    secrets_ = [PASSWORD, wrong, tokens["access_token"], tokens["refresh_token"]]
    for row in rows:
        text = " ".join(str(v) for v in row.model_dump().values())
        for secret in secrets_:
            assert secret not in text
