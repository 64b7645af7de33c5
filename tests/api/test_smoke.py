from fastapi.testclient import TestClient

from tests.factories import World


def test_me_returns_the_signed_in_account(client: TestClient, world: World) -> None:
    response = client.get("/v1/users/me", headers=world.headers("clinician_a"))
    assert response.status_code == 200
    assert response.json()["id"] == str(world.clinician_a.id)
