"""``primero-progres simulate primero`` runs the simulator standalone, seeded from a file."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import httpx2 as httpx
import pytest
from typer.testing import CliRunner

from primero_progres.cli import app as cli_app
from sim_process import simulate

RECORD_ID = "406b539a-e662-425e-810b-47e4fa7da496"


def primero_sim_process(*args: str) -> AbstractContextManager[str]:
    return simulate("primero", *args, ready="/_sim/journal")


def test_standalone_simulator_serves_seeded_cases_to_its_user(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "cases": [
                    {
                        "id": RECORD_ID,
                        "module_id": "primeromodule-cp",
                        "unhcr_individual_no": "ETH-1",
                    }
                ],
                "users": [{"user_name": "unhcr_cw", "full_name": "CW"}],
            }
        )
    )
    with primero_sim_process("--user", "bridge", "--password", "pw", "--seed", str(seed)) as url:
        assert httpx.get(f"{url}/api/v2/cases").status_code == 401
        answer = httpx.get(
            f"{url}/api/v2/cases", params={"unhcr_individual_no": "ETH-1"}, auth=("bridge", "pw")
        ).json()
        assert [case["id"] for case in answer["data"]] == [RECORD_ID]
        users = httpx.get(f"{url}/api/v2/users?user_name=unhcr_cw", auth=("bridge", "pw")).json()
        assert users["data"][0]["user_name"] == "unhcr_cw"


def test_password_is_required() -> None:
    result = CliRunner().invoke(cli_app, ["simulate", "primero", "--port", "1"], env={})
    assert result.exit_code != 0


def test_unreadable_seed_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    result = CliRunner().invoke(
        cli_app, ["simulate", "primero", "--password", "pw", "--seed", str(missing)]
    )
    assert result.exit_code != 0


def test_seed_file_that_is_not_a_json_object_is_a_configuration_error(tmp_path: Path) -> None:
    from primero_progres.sim.common import SimulatorConfigError
    from primero_progres.sim.primero import load_seed

    bad = tmp_path / "seed.json"
    for content in ("{not json", "[1, 2]"):
        bad.write_text(content)
        with pytest.raises(SimulatorConfigError) as caught:
            load_seed(bad)
        assert caught.value.reason == "bad_seed"


FOCAL_POINT = "progresv4_primero_intake@cpims-gambella.primero.org"


def test_default_instance_is_the_profile_s_with_its_users() -> None:
    with primero_sim_process("--user", "bridge", "--password", "pw") as url:
        config = httpx.get(f"{url}/_sim/config").json()
        assert "food" in config["lookups"]["lookup-service-type"]
        assert config["field_lookups"]["sex"] == "lookup-gender"
        for user_name in (FOCAL_POINT, "unhcr_cw@cpims-gambella.primero.org"):
            found = httpx.get(
                f"{url}/api/v2/users", params={"user_name": user_name}, auth=("bridge", "pw")
            ).json()["data"]
            assert [u["user_name"] for u in found] == [user_name]
            assert found[0]["disabled"] is False


def test_config_file_sets_the_instance(tmp_path: Path) -> None:
    config = tmp_path / "primero.json"
    config.write_text(json.dumps({"scope": "self", "users_permission": False}))
    options = ("--user", "bridge", "--password", "pw", "--config", str(config))
    with primero_sim_process(*options) as url:
        assert httpx.get(f"{url}/_sim/config").json()["scope"] == "self"
        users = httpx.get(f"{url}/api/v2/users", auth=("bridge", "pw"))
        assert users.status_code == 403


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"scope": "everyone"}', "scope"),
        ('{"field_lookups": {"sex": "lookup-gender"}}', "lookup-gender"),
        ("{not json", "cannot read"),
    ],
)
def test_bad_config_file_is_refused_with_the_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "primero.json"
    config.write_text(content)
    result = CliRunner().invoke(
        cli_app, ["simulate", "primero", "--password", "pw", "--config", str(config)]
    )
    assert result.exit_code == 2
    assert message in result.output
