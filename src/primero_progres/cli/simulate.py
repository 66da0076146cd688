"""Commands of the 'simulate' part (see cli/__init__.py): run a peer simulator standalone.

Each peer is one command of the ``simulate`` sub-app; add a sibling with
``@simulate_app.command("<peer>")``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

simulate_app = typer.Typer(
    name="simulate",
    help="Run a simulator of a peer (Primero, DTP, PING), or a fault proxy in front of one, "
    "on a local port, for tests and demos.",
    no_args_is_help=True,
)


@simulate_app.command("primero")
def simulate_primero(
    password: Annotated[
        str,
        typer.Option("--password", help="Password of the API user.", envvar="PRIMERO_SIM_PASSWORD"),
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8901,
    user: Annotated[
        str, typer.Option("--user", help="API user name the simulator accepts.")
    ] = "primero",
    seed: Annotated[
        Path | None,
        typer.Option(
            "--seed",
            help='JSON file {"cases": [...], "users": [...], "referrals": [...]}.',
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    token_login: Annotated[
        bool,
        typer.Option(
            "--token-login/--no-token-login",
            help="Answer POST /api/v2/tokens with a JWT (v2.0-v2.10) or without one (v2.11+).",
        ),
    ] = True,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help='JSON file {"scope", "readable_fields", "writable_fields", "lookups", '
            '"field_lookups", "users_permission"}; default: the profile\'s instance.',
            dir_okay=False,
        ),
    ] = None,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="Mapping profile whose users are seeded (and whose codes the default lookups "
            "hold): built-in name or YAML path.",
        ),
    ] = "gambella",
) -> None:
    """Primero v2 simulator: Basic auth, token login, cases, referrals, users, /_sim/ controls."""
    from ..sim.primero import serve

    _run(
        "primero",
        lambda: serve(
            port=port,
            users={user: password},
            host=host,
            seed_file=seed,
            token_login=token_login,
            config_file=config,
            profile=profile,
        ),
    )


@simulate_app.command("dtp")
def simulate_dtp(
    subscription_key: Annotated[
        str,
        typer.Option(
            "--subscription-key",
            help="The Ocp-Apim-Subscription-Key the gateway accepts.",
            envvar="DTP_SIM_SUBSCRIPTION_KEY",
        ),
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8902,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Server certificate (PEM; may hold the key).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Server key (PEM).")] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option("--client-ca", help="Require client certificates signed by this CA (mTLS)."),
    ] = None,
    bridge_inbox_url: Annotated[
        str | None, typer.Option("--bridge-inbox-url", help="Where proGres sends messages.")
    ] = None,
    bridge_token: Annotated[
        str | None,
        typer.Option(
            "--bridge-token", help="Bearer token for the inbox.", envvar="DTP_SIM_BRIDGE_TOKEN"
        ),
    ] = None,
    dedupe: Annotated[
        bool,
        typer.Option(
            "--dedupe/--no-dedupe",
            help="Answer a repeated Idempotency-Key with the first receipt, recording nothing.",
        ),
    ] = False,
) -> None:
    """DTP gateway simulator: both endpoints, subscription key, optional mTLS, /_sim/ controls."""
    from ..sim.dtp import serve

    _run(
        "dtp",
        lambda: serve(
            port=port,
            subscription_key=subscription_key,
            host=host,
            tls_cert=tls_cert,
            tls_key=tls_key,
            client_ca=client_ca,
            bridge_inbox_url=bridge_inbox_url,
            bridge_token=bridge_token,
            dedupe=dedupe,
        ),
    )


@simulate_app.command("proxy")
def simulate_proxy(
    upstream: Annotated[
        str,
        typer.Option(
            "--upstream", help="The peer (simulator) to forward to, e.g. http://127.0.0.1:8901."
        ),
    ],
    port: Annotated[
        int, typer.Option("--port", help="TCP port to listen on; 0: a free one, printed on start.")
    ] = 8903,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    rate: Annotated[
        float,
        typer.Option(
            "--rate", min=0.0, max=1.0, help="Share of requests faulted, spread evenly over --kind."
        ),
    ] = 0.3,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the fault decisions (replays a run).")
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="A fault to inject (repeatable): reset_before, reset_after, status_500, "
            "status_502, status_503, status_429, hang_before, hang_after; default: all.",
        ),
    ] = None,
    retry_after: Annotated[
        int, typer.Option("--retry-after", min=0, help="Retry-After of a 429, seconds.")
    ] = 1,
    hang_seconds: Annotated[
        float,
        typer.Option("--hang-seconds", min=0.001, help="How long a hang holds the connection."),
    ] = 300.0,
) -> None:
    """Fault proxy: forwards to a peer and fails a share of requests (resets, 5xx, 429, hangs)."""
    from ..sim.common import foreground_logging
    from ..sim.faultproxy import FAULT_KINDS, FaultPolicy, FaultProxy

    unknown = sorted(set(kinds or ()) - set(FAULT_KINDS))
    if unknown:
        typer.echo(f"simulate proxy: unknown --kind {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
    chosen = tuple(k for k in FAULT_KINDS if k in kinds) if kinds else FAULT_KINDS
    policy = FaultPolicy.uniform(
        rate, kinds=chosen, seed=seed, retry_after=retry_after, hang_seconds=hang_seconds
    )
    proxy = FaultProxy(upstream, policy=policy, host=host, port=port)
    # the bound port, also when --port 0 let the system pick it
    typer.echo(f"fault proxy on {proxy.url} -> {upstream} (seed {seed})", err=True)
    foreground_logging("info")  # each fault it injects is a DEBUG line
    proxy.run()


def _run(peer: str, serve: Callable[[], None]) -> None:
    """Serve in the foreground; a configuration problem exits with code 2 and its reason."""
    from ..errors import ConfigurationError
    from ..sim.common import SimulatorConfigError

    try:
        serve()
    except (ConfigurationError, SimulatorConfigError) as exc:
        typer.echo(f"simulate {peer}: {exc}", err=True)
        raise typer.Exit(2) from exc


@simulate_app.command("ping")
def simulate_ping(
    subscription_key: Annotated[
        str,
        typer.Option(
            "--subscription-key",
            help="The Ocp-Apim-Subscription-Key APIM accepts.",
            envvar="PING_SIM_SUBSCRIPTION_KEY",
        ),
    ],
    password: Annotated[
        str,
        typer.Option("--password", help="Password of the B2C user.", envvar="PING_SIM_PASSWORD"),
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8903,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    client_id: Annotated[
        str, typer.Option("--client-id", help="B2C application (client) id the token grant needs.")
    ] = "sim-client",
    username: Annotated[str, typer.Option("--username", help="B2C user name.")] = "bridge",
    scope: Annotated[str | None, typer.Option("--scope", help="Scope the grant must ask.")] = None,
    token_path: Annotated[
        str | None, typer.Option("--token-path", help="Path of the B2C token endpoint.")
    ] = None,
    partner_id: Annotated[str, typer.Option("--partner-id", help="PING partner id.")] = "PNR-1363",
    interop_id: Annotated[str, typer.Option("--interop-id", help="PING interop id.")] = "INT-1436",
    seed: Annotated[
        Path | None,
        typer.Option(
            "--seed",
            help='JSON file {"interventions": [...], "referrals": [...]}.',
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    synthetic: Annotated[
        int, typer.Option("--synthetic", min=0, help="Add N invented interventions (markers).")
    ] = 0,
    page_size: Annotated[int, typer.Option("--page-size", min=1, help="Rows per page.")] = 50,
    token_seconds: Annotated[
        int, typer.Option("--token-seconds", min=1, help="expires_in of issued tokens.")
    ] = 3600,
    async_delay: Annotated[
        float,
        typer.Option("--async-delay", min=0, help="Seconds an async item stays queued."),
    ] = 0.0,
) -> None:
    """PING simulator: B2C token, APIM checks, queries, ingestion, check status, /_sim/ controls."""
    from pydantic import ValidationError

    from ..sim.ping import DEFAULT_SCOPE, DEFAULT_TOKEN_PATH, read_seed, serve
    from ..sim.ping_state import Modes, Seed, synthetic_interventions

    try:
        tables = read_seed(seed) if seed is not None else Seed()
    except ValidationError as exc:
        typer.echo(f"simulate ping: --seed is not a valid seed ({exc.error_count()} problems)",
                   err=True)
        raise typer.Exit(2) from None
    tables.interventions.extend(synthetic_interventions(synthetic))
    _run(
        "ping",
        lambda: serve(
            port=port,
            host=host,
            seed=tables,
            modes=Modes(page_size=page_size, token_seconds=token_seconds,
                        async_delay_seconds=async_delay),
            subscription_key=subscription_key,
            client_id=client_id,
            username=username,
            password=password,
            scope=scope or DEFAULT_SCOPE,
            token_path=token_path or DEFAULT_TOKEN_PATH,
            partner_id=partner_id,
            interop_id=interop_id,
        ),
    )


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.add_typer(simulate_app, name="simulate")
