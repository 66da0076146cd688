"""``primero-progres doctor`` against the simulators: all ok, then one misconfiguration at a time.

The Primero simulator runs the Gambella instance (``PrimeroSimConfig.for_profile``) with
the profile's users seeded and one case, so filters can be proven; each test turns one
thing wrong through ``/_sim/config`` or the seed, and expects the matching FAIL line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import structlog
import trustme
from typer.testing import CliRunner

from primero_progres.cli import app as cli_app
from primero_progres.doctor import (
    DEFAULT_CHECKS,
    Check,
    DoctorContext,
    Finding,
    Outcome,
    Status,
    ok,
    passed,
    run_checks,
)
from primero_progres.profiles import load_profile
from primero_progres.settings import Settings
from primero_progres.sim import dtp as dtp_sim
from primero_progres.sim import primero as primero_sim
from primero_progres.sim.common import ServerThread, serve_in_thread
from primero_progres.sim.primero_config import PrimeroSimConfig, profile_users

API_USER, API_PASSWORD = "bridge", "bridge-secret"
KEY = "doctor-key"
PROFILE = load_profile("gambella")
FOCAL_POINT = PROFILE.focal_point.default_user
CASE_ID = "f59e880e-d58f-4b68-ba6e-e0616a49aefd"
RECORD_ID = "406b539a-e662-425e-810b-47e4fa7da496"
NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command configures logging for the process; other tests expect it as it was."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@dataclass
class Peers:
    primero: ServerThread
    primero_app: Any
    dtp: ServerThread
    dtp_app: Any

    def configure(self, **changes: Any) -> None:
        response = httpx.patch(f"{self.primero.url}/_sim/config", json=changes)
        assert response.status_code == 200, response.text

    def seed(self, **payload: Any) -> None:
        assert httpx.post(f"{self.primero.url}/_sim/seed", json=payload).status_code == 200


@pytest.fixture
def peers() -> Iterator[Peers]:
    app = primero_sim.create_app(
        users={API_USER: API_PASSWORD},
        config=PrimeroSimConfig.for_profile(PROFILE),
        seed={
            "users": profile_users(PROFILE),
            "cases": [
                {"id": RECORD_ID, "case_id": CASE_ID, "module_id": "primeromodule-cp",
                 "owned_by": "someone_else", "unhcr_individual_no": "ETH-1"}
            ],
        },
    )
    gateway = dtp_sim.create_app(subscription_key=KEY)
    with serve_in_thread(app) as primero, serve_in_thread(gateway) as dtp:
        yield Peers(primero, app, dtp, gateway)


def settings_for(peers: Peers, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "primero_url": peers.primero.url,
        "primero_username": API_USER,
        "primero_password": API_PASSWORD,
        "primero_timeout_seconds": 5.0,
        "dtp_url": peers.dtp.url,
        "dtp_subscription_key": KEY,
        **overrides,
    }
    return Settings.for_tests(**options)


async def doctor(settings: Settings, **options: Any) -> dict[str, Finding]:
    options.setdefault("handshake_settle", 0.5)
    findings = await run_checks(DoctorContext(settings, **options))
    assert [f.check for f in findings] == [c.name for c in DEFAULT_CHECKS]
    return {f.check: f for f in findings}


def fails(findings: dict[str, Finding]) -> dict[str, Finding]:
    return {name: f for name, f in findings.items() if f.status is Status.FAIL}


# ---------------------------------------------------------------- a good configuration


async def test_default_simulators_pass_with_warnings_for_plain_http(peers: Peers) -> None:
    findings = await doctor(settings_for(peers), probe_case=CASE_ID)
    assert fails(findings) == {}
    warned = {name for name, f in findings.items() if f.status is Status.WARN}
    assert warned == {"primero.tls", "dtp.tls", "dtp.client_certificate"}
    for name in (
        "primero.reachable", "primero.credentials", "primero.per", "primero.scope",
        "primero.probe_case", "primero.users_permission", "primero.filter.unhcr_individual_no",
        "primero.filter.case_id", "primero.filter.associated_user_names",
        "primero.filter.last_updated_at", "profile.module", "profile.lookups",
        "profile.writable_fields", "profile.readable_fields", "profile.focal_point_users",
        "profile.unhcr_caseworkers", "profile.flow3_codes",
    ):
        assert findings[name].status is Status.OK, findings[name].line()
    assert "plain http://" in findings["primero.tls"].message
    assert passed(findings.values())


async def test_doctor_writes_nothing_and_sends_nothing(peers: Peers) -> None:
    await doctor(settings_for(peers), probe_case=CASE_ID)
    journal = httpx.get(f"{peers.primero.url}/_sim/journal").json()
    assert journal and {entry["method"] for entry in journal} == {"GET"}
    assert httpx.get(f"{peers.dtp.url}/_sim/messages").json() == []


async def test_an_empty_primero_cannot_prove_the_filters(peers: Peers) -> None:
    peers.primero_app.state.primero.cases.clear()
    findings = await doctor(settings_for(peers))
    for field in ("unhcr_individual_no", "case_id", "associated_user_names", "last_updated_at"):
        finding = findings[f"primero.filter.{field}"]
        assert finding.status is Status.WARN and "no case is visible" in finding.message
    assert fails(findings) == {}


# ---------------------------------------------------------------- Primero misconfigured


async def test_self_scope_fails(peers: Peers) -> None:
    peers.configure(scope="self")
    findings = await doctor(settings_for(peers), probe_case=CASE_ID)
    failed = fails(findings)
    assert set(failed) == {"primero.scope", "primero.probe_case"}
    assert "duplicate cases" in failed["primero.scope"].message
    assert "'all' scope" in failed["primero.scope"].action
    assert "not visible to the API user" in failed["primero.probe_case"].message
    # by its primary key, Primero tells a case out of scope (403) from no case (404)
    findings = await doctor(settings_for(peers), probe_case=RECORD_ID)
    assert "outside the API user's scope" in fails(findings)["primero.probe_case"].message


async def test_group_scope_warns(peers: Peers) -> None:
    peers.configure(scope="group")
    findings = await doctor(settings_for(peers))
    assert findings["primero.scope"].status is Status.WARN


async def test_unknown_probe_case_fails(peers: Peers) -> None:
    findings = await doctor(settings_for(peers), probe_case="no-such-case")
    assert findings["primero.probe_case"].status is Status.FAIL


@pytest.mark.parametrize(
    "field", ["unhcr_individual_no", "case_id", "associated_user_names", "last_updated_at"]
)
async def test_an_ignored_filter_fails(peers: Peers, field: str) -> None:
    readable = [
        "unhcr_individual_no", "case_id", "associated_user_names", "last_updated_at",
        "owned_by", "status", "services_section", "name_first", "name_last", "name_middle",
        "name_nickname", "unhcr_id_no", "address_current", "date_of_birth", "sex",
        "telephone_current", "language",
    ]
    peers.configure(readable_fields=[name for name in readable if name != field])
    failed = fails(await doctor(settings_for(peers)))
    finding = failed.pop(f"primero.filter.{field}")
    assert "dropped silently" in finding.message and field in finding.action
    # a field the flows read is unreadable, which the readable check says too
    assert set(failed) <= {"profile.readable_fields"}


async def test_a_code_missing_from_a_lookup_fails(peers: Peers) -> None:
    lookups = PrimeroSimConfig.for_profile(PROFILE).lookups
    lookups["lookup-service-type"] = [c for c in lookups["lookup-service-type"] if c != "food"]
    lookups["lookup-gender"] = ["female", "male"]
    peers.configure(lookups=lookups)
    failed = fails(await doctor(settings_for(peers)))
    assert set(failed) == {"profile.lookups"}
    message = failed["profile.lookups"].message
    assert "services_section.service_type: food not in lookup-service-type" in message
    assert "sex: other_b25f252, unknown_4b34795 not in lookup-gender" in message


async def test_a_missing_lookup_fails(peers: Peers) -> None:
    config = PrimeroSimConfig.for_profile(PROFILE)
    peers.configure(  # the language field still names lookup-language, which is gone
        lookups={k: v for k, v in config.lookups.items() if k != "lookup-language"},
        field_lookups={k: v for k, v in config.field_lookups.items() if k != "language"},
    )
    failed = fails(await doctor(settings_for(peers)))
    assert set(failed) == {"profile.lookups"}
    assert "language: lookup lookup-language does not exist" in failed["profile.lookups"].message


async def test_lookup_values_flow3_cannot_translate_warn(peers: Peers) -> None:
    lookups = PrimeroSimConfig.for_profile(PROFILE).lookups
    lookups["lookup-service-type"] = [*lookups["lookup-service-type"], "teleportation"]
    peers.configure(lookups=lookups)
    findings = await doctor(settings_for(peers))
    assert findings["profile.flow3_codes"].status is Status.WARN
    assert "teleportation" in findings["profile.flow3_codes"].message
    assert fails(findings) == {}


async def test_a_field_not_writable_fails(peers: Peers) -> None:
    from primero_progres.mapping.progres_referral import written_fields

    writable = [f for f in written_fields() if f != "services_section.progres_interventionnumber"]
    peers.configure(writable_fields=writable)
    failed = fails(await doctor(settings_for(peers)))
    assert set(failed) == {"profile.writable_fields"}
    assert failed["profile.writable_fields"].message.endswith(
        "services_section.progres_interventionnumber"
    )
    peers.configure(writable_fields=[f for f in writable if f != "unhcr_individual_no"])
    failed = fails(await doctor(settings_for(peers)))
    assert "unhcr_individual_no" in failed["profile.writable_fields"].message


async def test_a_disabled_focal_point_user_fails(peers: Peers) -> None:
    peers.seed(users=[{"user_name": FOCAL_POINT, "disabled": True}])
    failed = fails(await doctor(settings_for(peers)))
    assert set(failed) == {"profile.focal_point_users"}
    assert failed["profile.focal_point_users"].message == (
        f"focal-point users: disabled: {FOCAL_POINT}"
    )


async def test_a_missing_caseworker_and_route_user_fail(peers: Peers, tmp_path: Path) -> None:
    data = PROFILE.model_dump()
    data["focal_point"]["routes"] = [{"business_unit": "bu-1", "user": "unit_intake"}]
    data["unhcr_caseworkers"] = [*PROFILE.unhcr_caseworkers, "unhcr_cw2"]
    profile_file = tmp_path / "routed.yaml"
    profile_file.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    failed = fails(await doctor(settings_for(peers, profile=str(profile_file))))
    assert failed["profile.focal_point_users"].message == "focal-point users: missing: unit_intake"
    assert failed["profile.unhcr_caseworkers"].message == "UNHCR caseworkers: missing: unhcr_cw2"


async def test_users_forbidden_fails(peers: Peers) -> None:
    peers.configure(users_permission=False)
    findings = await doctor(settings_for(peers))
    failed = fails(findings)
    assert set(failed) == {"primero.users_permission"}
    assert "Users permission" in failed["primero.users_permission"].action
    for name in ("primero.scope", "profile.writable_fields", "profile.focal_point_users"):
        assert findings[name].status is Status.WARN
        assert findings[name].message.startswith("not checked:")


async def test_users_forbidden_in_token_mode_still_reads_the_role(peers: Peers) -> None:
    peers.configure(users_permission=False, scope="self")
    failed = fails(await doctor(settings_for(peers, primero_auth="token")))
    assert set(failed) == {"primero.users_permission", "primero.scope"}


async def test_wrong_password_fails_and_the_rest_is_not_checked(peers: Peers) -> None:
    findings = await doctor(settings_for(peers, primero_password="wrong"))
    assert set(fails(findings)) == {"primero.credentials"}
    assert "refused in basic mode" in findings["primero.credentials"].message
    assert findings["primero.scope"].message.startswith("not checked:")


async def test_token_mode_against_a_sessions_era_primero_fails(peers: Peers) -> None:
    app = primero_sim.create_app(users={API_USER: API_PASSWORD}, token_login=False)
    with serve_in_thread(app) as modern:
        findings = await doctor(
            settings_for(peers, primero_url=modern.url, primero_auth="token")
        )
    assert "PRIMERO_PROGRES_PRIMERO_AUTH=basic" in findings["primero.credentials"].action


async def test_unreachable_primero_fails_once(peers: Peers, refused_url: str) -> None:
    settings = settings_for(peers, primero_url=refused_url)
    findings = await doctor(settings, handshake_settle=0.1)
    assert set(fails(findings)) == {"primero.reachable"}


async def test_unconfigured_primero_fails_once(peers: Peers) -> None:
    findings = await doctor(Settings.for_tests(dtp_url=peers.dtp.url, dtp_subscription_key=KEY))
    assert set(fails(findings)) == {"primero.settings"}
    assert "PRIMERO_PROGRES_PRIMERO_URL" in findings["primero.settings"].message


async def test_a_module_unknown_to_primero_fails(peers: Peers, tmp_path: Path) -> None:
    data = PROFILE.model_dump()
    data["primero"]["module_id"] = "primeromodule-unknown"
    profile_file = tmp_path / "other.yaml"
    profile_file.write_text(json.dumps(data), encoding="utf-8")
    failed = fails(await doctor(settings_for(peers, profile=str(profile_file))))
    assert "primeromodule-unknown" in failed["profile.module"].message


# ---------------------------------------------------------------- DTP over mutual TLS


@dataclass
class Certificates:
    ca: Path
    server: Path
    valid: Path
    expired: Path
    expiring: Path
    other_ca: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("doctor-tls")
    ca, other = trustme.CA(), trustme.CA()
    files = Certificates(*(directory / f"{n}.pem" for n in (
        "ca", "server", "valid", "expired", "expiring", "other_ca")))
    ca.cert_pem.write_to_path(str(files.ca))
    other.cert_pem.write_to_path(str(files.other_ca))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(files.server))
    for path, before, after in (
        (files.valid, NOW - timedelta(days=1), NOW + timedelta(days=365)),
        (files.expired, NOW - timedelta(days=60), NOW - timedelta(days=1)),
        (files.expiring, NOW - timedelta(days=60), NOW + timedelta(days=10)),
    ):
        leaf = ca.issue_cert("bridge@example.org", not_before=before, not_after=after)
        leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    return files


@pytest.fixture
def mtls_gateway(certificates: Certificates) -> Iterator[ServerThread]:
    from primero_progres.peers.tls import uvicorn_tls_options

    app = dtp_sim.create_app(subscription_key=KEY)
    options = uvicorn_tls_options(cert=certificates.server, client_ca=certificates.ca)
    with serve_in_thread(app, **options) as server:
        yield server


def mtls_settings(
    peers: Peers, gateway: ServerThread, ca: Path, client_cert: Path | None
) -> Settings:
    """The bridge's settings for the mutual-TLS gateway, trusting ``ca``."""
    return settings_for(peers, dtp_url=gateway.url, dtp_client_cert=client_cert, dtp_ca=ca)


async def test_a_valid_client_certificate_passes(
    peers: Peers, certificates: Certificates, mtls_gateway: ServerThread
) -> None:
    settings = mtls_settings(peers, mtls_gateway, certificates.ca, certificates.valid)
    findings = await doctor(settings)
    assert findings["dtp.tls"].status is Status.OK, findings["dtp.tls"].line()
    assert findings["dtp.client_certificate"].status is Status.OK
    assert "valid until" in findings["dtp.client_certificate"].message


async def test_an_expired_client_certificate_fails(
    peers: Peers, certificates: Certificates, mtls_gateway: ServerThread
) -> None:
    settings = mtls_settings(peers, mtls_gateway, certificates.ca, certificates.expired)
    failed = fails(await doctor(settings))
    assert failed["dtp.client_certificate"].message.startswith("expired on ")
    assert set(failed) == {"dtp.client_certificate", "dtp.tls"}  # the gateway refuses it too
    assert "refused" in failed["dtp.tls"].message


async def test_a_certificate_expiring_soon_warns(
    peers: Peers, certificates: Certificates, mtls_gateway: ServerThread
) -> None:
    settings = mtls_settings(peers, mtls_gateway, certificates.ca, certificates.expiring)
    findings = await doctor(settings)
    assert findings["dtp.client_certificate"].status is Status.WARN
    assert findings["dtp.client_certificate"].message.startswith("expires on ")
    assert findings["dtp.tls"].status is Status.OK


async def test_an_untrusted_gateway_fails(
    peers: Peers, certificates: Certificates, mtls_gateway: ServerThread
) -> None:
    settings = mtls_settings(peers, mtls_gateway, certificates.other_ca, certificates.valid)
    failed = fails(await doctor(settings))
    assert set(failed) == {"dtp.tls"}
    assert "not trusted" in failed["dtp.tls"].message
    assert "PRIMERO_PROGRES_DTP_CA" in failed["dtp.tls"].action


async def test_no_client_certificate_for_an_https_gateway(
    peers: Peers, certificates: Certificates, mtls_gateway: ServerThread
) -> None:
    settings = mtls_settings(peers, mtls_gateway, certificates.ca, None)
    findings = await doctor(settings)
    assert findings["dtp.client_certificate"].status is Status.WARN
    assert findings["dtp.tls"].status is Status.FAIL


# ---------------------------------------------------------------- the command


def doctor_env(peers: Peers) -> dict[str, str]:
    return {
        "PRIMERO_PROGRES_PRIMERO_URL": peers.primero.url,
        "PRIMERO_PROGRES_PRIMERO_USERNAME": API_USER,
        "PRIMERO_PROGRES_PRIMERO_PASSWORD": API_PASSWORD,
        "PRIMERO_PROGRES_DTP_URL": peers.dtp.url,
        "PRIMERO_PROGRES_DTP_SUBSCRIPTION_KEY": KEY,
    }


def test_command_prints_one_line_per_check_and_exits_0(peers: Peers) -> None:
    result = CliRunner().invoke(cli_app, ["doctor", "--probe-case", CASE_ID], env=doctor_env(peers))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == len(DEFAULT_CHECKS) + 2
    assert lines[0].split()[:2] == ["ok", "profile.valid"]
    assert any(line.startswith("warn  primero.tls") and " -> use https://" in line
               for line in lines)
    assert lines[-1] == f"{len(DEFAULT_CHECKS)} checks, nothing FAILs"
    assert API_PASSWORD not in result.output


def test_command_json_and_exit_1_on_a_fail(peers: Peers) -> None:
    peers.configure(scope="self")
    result = CliRunner().invoke(cli_app, ["doctor", "--json"], env=doctor_env(peers))
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False
    by_name = {c["check"]: c for c in document["checks"]}
    assert by_name["primero.scope"]["status"] == "FAIL"
    assert by_name["primero.scope"]["action"]
    assert set(by_name["primero.reachable"]) == {"check", "status", "message", "action"}


def test_command_fail_line_format(peers: Peers) -> None:
    peers.configure(users_permission=False)
    result = CliRunner().invoke(cli_app, ["doctor"], env=doctor_env(peers))
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert line.split()[1] == "primero.users_permission"
    assert " -> give the API user's role the Users permission 'read'" in line
    assert result.output.strip().endswith("checks, 1 FAIL")


# ---------------------------------------------------------------- more checks


async def test_checks_can_be_added(peers: Peers) -> None:
    async def gateway_ping(ctx: DoctorContext) -> Outcome:
        return ok(f"pinged {ctx.settings.dtp_url}")

    async def broken(ctx: DoctorContext) -> Outcome:
        raise RuntimeError("bug")

    context = DoctorContext(settings_for(peers), handshake_settle=0.1)
    findings = await run_checks(
        context, [*DEFAULT_CHECKS, Check("ping.gateway", gateway_ping), Check("x", broken)]
    )
    pinged = ["ok", "ping.gateway", f"pinged {peers.dtp.url}"]
    assert findings[-2].line().split(maxsplit=2) == pinged
    assert (findings[-1].status, findings[-1].message) == (
        Status.FAIL, "the check failed (RuntimeError)"
    )


# ---------------------------------------------------------------- over PING

PING_CHECKS = (
    "ping.settings", "ping.profile", "ping.token", "ping.api", "ping.shipping_processes",
    "ping.status_codes",
)


@pytest.fixture
def ping_peer(ping_sim: Any) -> Any:
    """The shared PING simulator, with one queued intervention and one decided referral."""
    from primero_progres.sim.ping_state import Seed, SeedReferral, synthetic_interventions

    ping_sim.seed(
        Seed(
            interventions=synthetic_interventions(1),
            referrals=[SeedReferral(fields={"progres_interoperabilityreferralstatus": 125080001})],
        )
    )
    return ping_sim


def ping_settings_for(peers: Peers, ping: Any, **overrides: Any) -> Settings:
    import ping_helpers
    from primero_progres.sim.ping import DEFAULT_SCOPE, DEFAULT_TOKEN_PATH
    from primero_progres.sim.ping_state import DEFAULT_SHIPPING_PROCESSES

    options: dict[str, Any] = {
        "unhcr_gateway": "ping",
        "ping_url": ping.url,
        "ping_token_url": ping.url,
        "ping_token_path": DEFAULT_TOKEN_PATH,
        "ping_client_id": ping_helpers.CLIENT_ID,
        "ping_username": ping_helpers.USER,
        "ping_password": ping_helpers.PASSWORD,
        "ping_scope": DEFAULT_SCOPE,
        "ping_subscription_key": ping_helpers.KEY,
        "ping_partner_id": ping_helpers.PARTNER,
        "ping_interop_id": ping_helpers.INTEROP,
        "ping_timeout_seconds": 5.0,
        **{f"ping_shp_{name}": shp for name, shp in DEFAULT_SHIPPING_PROCESSES.items()},
        "dtp_url": None,
        "dtp_subscription_key": None,
        **overrides,
    }
    return settings_for(peers, **options)


async def test_a_ping_deployment_passes_and_doctor_writes_nothing_to_ping(
    peers: Peers, ping_peer: Any
) -> None:
    findings = await doctor(ping_settings_for(peers, ping_peer), probe_case=CASE_ID)
    assert fails(findings) == {}
    for name in PING_CHECKS:
        assert findings[name].status is Status.OK, findings[name].line()
    for name in ("dtp.settings", "dtp.tls", "dtp.client_certificate"):
        finding = findings[name]
        assert (finding.status, finding.message) == (
            Status.OK, "not used: PRIMERO_PROGRES_UNHCR_GATEWAY is ping"
        )
    assert "SHP-2748, SHP-2731, SHP-2284" in findings["ping.shipping_processes"].message
    assert "PING" in findings["profile.flow3_codes"].message
    assert ping_peer.sim("GET", "ingestions") == []
    assert {e["path"] for e in ping_peer.sim("GET", "journal")} <= {
        "/primes/fetch/paging/v3/retrievedatawithpaging",
        "/sim-tenant.onmicrosoft.com/B2C_1_ROPC_sim/oauth2/v2.0/token",
    }


async def test_a_dtp_deployment_does_not_use_the_ping_checks(peers: Peers) -> None:
    findings = await doctor(settings_for(peers), probe_case=CASE_ID)
    for name in PING_CHECKS:
        finding = findings[name]
        assert (finding.status, finding.message) == (
            Status.OK, "not used: PRIMERO_PROGRES_UNHCR_GATEWAY is dtp"
        )


async def test_ping_settings_missing_are_named(peers: Peers, ping_peer: Any) -> None:
    settings = ping_settings_for(
        peers, ping_peer, ping_password=None, ping_shp_referral_detail=None
    )
    findings = await doctor(settings)
    assert findings["ping.settings"].status is Status.FAIL
    assert findings["ping.settings"].message == (
        "not set: PRIMERO_PROGRES_PING_PASSWORD, PRIMERO_PROGRES_PING_SHP_REFERRAL_DETAIL"
    )
    assert findings["ping.token"].status is Status.WARN  # not checked


async def test_a_wrong_ping_password_fails_the_token(peers: Peers, ping_peer: Any) -> None:
    findings = await doctor(ping_settings_for(peers, ping_peer, ping_password="wrong"))
    assert set(fails(findings)) == {"ping.token"}
    assert findings["ping.token"].message == (
        "the token endpoint refused the service account: token_refused (error=invalid_grant)"
    )
    assert "wrong" not in findings["ping.token"].line()
    assert findings["ping.api"].status is Status.WARN


async def test_a_wrong_subscription_key_fails_at_apim(peers: Peers, ping_peer: Any) -> None:
    findings = await doctor(ping_settings_for(peers, ping_peer, ping_subscription_key="nope"))
    assert set(fails(findings)) == {"ping.api"}
    assert findings["ping.api"].message == "APIM refused the subscription key"
    assert findings["ping.token"].status is Status.OK


async def test_a_wrong_shipping_process_is_named(peers: Peers, ping_peer: Any) -> None:
    findings = await doctor(ping_settings_for(peers, ping_peer, ping_shp_decisions_list="SHP-1"))
    assert set(fails(findings)) == {"ping.shipping_processes"}
    assert findings["ping.shipping_processes"].message == (
        "SHP-1 (decisions_list): PING answered an ErrorMessage"
    )
    assert findings["ping.status_codes"].status is Status.WARN  # not checked


async def test_a_status_code_the_profile_does_not_know_fails(peers: Peers, ping_peer: Any) -> None:
    from primero_progres.sim.ping_state import Seed, SeedReferral

    ping_peer.seed(
        Seed(referrals=[SeedReferral(fields={"progres_interoperabilityreferralstatus": 125080009})])
    )
    findings = await doctor(ping_settings_for(peers, ping_peer))
    assert set(fails(findings)) == {"ping.status_codes"}
    assert findings["ping.status_codes"].message == (
        "PING's lists hold codes the profile does not know: "
        "progres_interoperabilityreferralstatus: 125080009 (not in ping.referral_status)"
    )


async def test_a_profile_without_its_ping_section_fails(
    peers: Peers, ping_peer: Any, tmp_path: Path
) -> None:
    import yaml

    from primero_progres.profiles import loader

    source = yaml.safe_load(loader.built_in_path("gambella").read_text(encoding="utf-8"))
    del source["ping"]
    path = tmp_path / "no-ping.yaml"
    path.write_text(yaml.safe_dump(source), encoding="utf-8")
    findings = await doctor(ping_settings_for(peers, ping_peer, profile=str(path)))
    assert findings["ping.profile"].status is Status.FAIL
    assert "has no ping section" in findings["ping.profile"].message
    assert findings["ping.status_codes"].status is Status.WARN


# ---------------------------------------------------------------- webhooks and sync status

PUBLIC = "https://bridge.example.org"
TOKEN = "doctor-webhook-token"
WEBHOOKS = {"webhooks": True, "public_url": PUBLIC, "primero_webhook_tokens": TOKEN}


def webhooks(peers: Peers) -> list[dict[str, Any]]:
    response = httpx.get(f"{peers.primero.url}/api/v2/webhooks", auth=(API_USER, API_PASSWORD))
    return list(response.json()["data"])


def register(peers: Peers, *args: str) -> Any:
    env = {
        "PRIMERO_PROGRES_PRIMERO_URL": peers.primero.url,
        "PRIMERO_PROGRES_PRIMERO_USERNAME": API_USER,
        "PRIMERO_PROGRES_PRIMERO_PASSWORD": API_PASSWORD,
        "PRIMERO_PROGRES_PRIMERO_WEBHOOK_TOKENS": f"{TOKEN},second",
    }
    return CliRunner().invoke(cli_app, ["primero", "register-webhook", *args], env=env)


async def test_webhook_checks_say_not_used_while_webhooks_are_off(peers: Peers) -> None:
    findings = await doctor(settings_for(peers))
    for name in ("primero.webhook", "primero.module_webhooks", "primero.sync_external"):
        assert findings[name].status is Status.OK
        assert "not used" in findings[name].message


async def test_no_webhook_for_the_bridge_fails_and_names_the_command(peers: Peers) -> None:
    findings = await doctor(settings_for(peers, **WEBHOOKS))
    webhook = findings["primero.webhook"]
    assert webhook.status is Status.FAIL
    assert "register-webhook" in webhook.action
    assert findings["primero.module_webhooks"].status is Status.OK


def test_register_webhook_is_idempotent_and_never_prints_the_token(peers: Peers) -> None:
    first = register(peers, "--url", PUBLIC + "/")
    again = register(peers, "--url", PUBLIC)
    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert first.output.startswith("registered: webhook ")
    assert again.output.startswith("already registered: webhook ")
    assert TOKEN not in first.output + again.output
    assert f"{PUBLIC}/api/v1/primero/webhook/<token>" in first.output
    [hook] = webhooks(peers)
    assert hook["url"] == f"{PUBLIC}/api/v1/primero/webhook/{TOKEN}"
    assert (hook["events"], hook["role_unique_id"]) == ("case.update", "role-primero-progres-api")


async def test_a_registered_webhook_passes(peers: Peers) -> None:
    registered = await asyncio.to_thread(register, peers, "--url", PUBLIC, "--no-token-in-path")
    assert registered.exit_code == 0
    [hook] = webhooks(peers)
    assert hook["url"] == f"{PUBLIC}/api/v1/primero/webhook"
    findings = await doctor(settings_for(peers, **WEBHOOKS))
    assert findings["primero.webhook"].status is Status.OK
    assert TOKEN not in findings["primero.webhook"].message


def test_register_webhook_without_a_token_or_permission_says_why(peers: Peers) -> None:
    bad_url = register(peers, "--url", "bridge.example.org")
    assert bad_url.exit_code == 2
    peers.configure(webhook_permissions=[])
    refused = register(peers, "--url", PUBLIC)
    assert refused.exit_code == 1
    assert "not registered" in refused.output and TOKEN not in refused.output


async def test_a_module_without_webhooks_for_cases_fails(peers: Peers) -> None:
    peers.configure(use_webhooks_for={"primeromodule-cp": []})
    findings = await doctor(settings_for(peers, **WEBHOOKS))
    module = findings["primero.module_webhooks"]
    assert module.status is Status.FAIL
    assert "use_webhooks_for" in module.action


async def test_unreadable_modules_and_webhooks_warn(peers: Peers) -> None:
    peers.configure(modules_permission=False, webhook_permissions=[])
    findings = await doctor(settings_for(peers, **WEBHOOKS))
    assert findings["primero.module_webhooks"].status is Status.WARN
    assert findings["primero.webhook"].status is Status.WARN


async def test_mark_synced_without_sync_external_fails(peers: Peers) -> None:
    assert (await doctor(settings_for(peers, mark_synced=True)))[
        "primero.sync_external"
    ].status is Status.OK
    peers.configure(sync_external=False)
    findings = await doctor(settings_for(peers, mark_synced=True))
    assert findings["primero.sync_external"].status is Status.FAIL
    assert "sync_external" in findings["primero.sync_external"].action
