"""The scenarios: one request to the service against its bare counterpart in the baseline.

To add one: write a `prepare` function that signs in / creates what the request needs through the
running service and returns the LoadRequest, give the baseline app (bench/baseline_app.py) the
bare counterpart, and append a Scenario to SCENARIOS. A POST with a body that must vary from one
request to the next can put a Lua `request()` function in LoadRequest.lua.
"""

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from loadgen import LoadRequest
from servers import Admin

HTTP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Target:
    """What the service should reach; reported, never a reason to fail the run."""

    min_ratio: float | None = None  # service req/s divided by baseline req/s
    max_p99_ms: float | None = None  # the service's p99

    def misses(self, ratio: float, p99_ms: float) -> list[str]:
        missed = []
        if self.min_ratio is not None and ratio < self.min_ratio:
            missed.append(f"ratio {ratio:.2f} < {self.min_ratio}")
        if self.max_p99_ms is not None and p99_ms >= self.max_p99_ms:
            missed.append(f"p99 {p99_ms:.1f} ms >= {self.max_p99_ms} ms")
        return missed


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    baseline: LoadRequest
    prepare: Callable[[httpx.Client, Admin], LoadRequest]  # runs against the started service
    target: Target | None = None


def sign_in(client: httpx.Client, admin: Admin) -> dict[str, str]:
    """The Authorization header of a fresh sign-in (the access token lasts 15 minutes)."""
    response = client.post(
        "/v1/auth/token", data={"username": admin.email, "password": admin.password}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def prepare_users_me(client: httpx.Client, admin: Admin) -> LoadRequest:
    headers = sign_in(client, admin)
    client.get("/v1/users/me", headers=headers).raise_for_status()
    return LoadRequest(path="/v1/users/me", headers=headers)


SCENARIOS: list[Scenario] = [
    Scenario(
        name="users-me",
        description="authenticated GET /v1/users/me vs a bare GET doing the audit INSERT + COMMIT",
        baseline=LoadRequest(path="/users/me"),
        prepare=prepare_users_me,
    ),
]


def by_name(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    known = ", ".join(s.name for s in SCENARIOS)
    raise SystemExit(f"No scenario {name!r}; known: {known}")
