"""``primero-progres doctor``: a read-only pre-flight check of a deployment.

Each check answers one question about the configured Primero, profile or UNHCR gateway
(DTP or PING, as ``PRIMERO_PROGRES_UNHCR_GATEWAY`` says; the other gateway's checks say
"not used") and gives one finding: ``ok``, ``warn`` (works, but look at it) or ``FAIL``
(the bridge would lose, duplicate or refuse work), with what to do. Nothing is written to
Primero, nothing is sent to DTP, and PING is only queried (its ingestion shipping
processes are not probed: that would write).

A check is a name and an async function of the shared ``DoctorContext`` (which fetches
what several checks need once: the connection, the API user's role, the forms, the
lookups). ``DEFAULT_CHECKS`` is the list the command runs; another part adds its own
checks by extending it (``run_checks(context, [*DEFAULT_CHECKS, my_check])``).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from .errors import ConfigurationError
from .mapping import ping as ping_mapping
from .mapping import primero_referral as flow3
from .mapping import progres_referral as flow1
from .peers.errors import PeerError, PermanentPeerError, TransientPeerError
from .peers.ping import (
    PingAuthenticationError,
    PingClient,
    PingPage,
    PingRejectedError,
    client_from_settings,
)
from .peers.primero import (
    AuthenticationError,
    CasePage,
    ForbiddenError,
    PrimeroClient,
    TokenNotIssuedError,
    tls_failure,
)
from .peers.tls import HandshakeRefused, client_ssl_context, handshake
from .profiles import Profile, ProfileError, load_profile
from .settings import PING_REQUIRED, WEBHOOK_PATH, Settings, env_name

#: a client certificate expiring sooner than this is a warning
EXPIRY_WARNING = timedelta(days=30)
#: fields Primero lets every role read and write whatever its forms (permitted_field_service.rb)
ALWAYS_PERMITTED = frozenset(
    {
        "id",
        "status",
        "case_status_reopened",
        "record_state",
        "owned_by",
        "module_id",
        "created_at",
        "associated_user_names",
        "last_updated_at",
        "sex",
        "age",
    }
)
CORE_WRITABLE = frozenset(
    {"status", "case_status_reopened", "record_state", "owned_by", "module_id"}
)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check found, and what to do about it (empty when nothing is to be done)."""

    status: Status
    message: str
    action: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    message: str
    action: str = ""

    def line(self) -> str:
        text = f"{self.status.value:<4}  {self.check:<36} {self.message}"
        return f"{text} -> {self.action}" if self.action else text

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": self.status.value,
            "message": self.message,
            "action": self.action,
        }


def ok(message: str) -> Outcome:
    return Outcome(Status.OK, message)


def warn(message: str, action: str = "") -> Outcome:
    return Outcome(Status.WARN, message, action)


def fail(message: str, action: str) -> Outcome:
    return Outcome(Status.FAIL, message, action)


class NotChecked(Exception):
    """What a check needs is unavailable (reported by another check): a warning, not a FAIL."""


CheckRun = Callable[["DoctorContext"], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    run: CheckRun


# ------------------------------------------------------------------ shared facts


@dataclass(frozen=True, slots=True)
class FormIndex:
    """Primero's forms, as ``GET /api/v2/forms`` gives them, indexed for field questions."""

    forms: list[dict[str, Any]]

    def _by_id(self) -> dict[Any, dict[str, Any]]:
        return {form.get("id"): form for form in self.forms}

    def places(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """``(top-level form unique_id, field)`` for a field, ``subform.field`` included."""
        subform, _, name = path.rpartition(".")
        found = []
        by_id = self._by_id()
        for form in self.forms:
            if form.get("is_nested"):
                continue
            for field in _fields(form):
                if not subform and field.get("name") == name:
                    found.append((str(form.get("unique_id")), field))
                elif subform and field.get("name") == subform and field.get("type") == "subform":
                    nested = by_id.get(field.get("subform_section_id"), {})
                    found.extend(
                        (str(form.get("unique_id")), inner)
                        for inner in _fields(nested)
                        if inner.get("name") == name
                    )
        return found

    def lookup_of(self, path: str) -> str | None:
        """The lookup a select field takes its values from (``lookup <id>``), if any."""
        for _, field in self.places(path):
            source = field.get("option_strings_source")
            if isinstance(source, str) and source.startswith("lookup "):
                return source.split(maxsplit=1)[1]
        return None


def _fields(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    fields = form.get("fields")
    return [f for f in fields if isinstance(f, dict)] if isinstance(fields, list) else []


class DoctorContext:
    """Settings and what the checks learn on the way, each fetched at most once."""

    def __init__(
        self,
        settings: Settings,
        *,
        probe_case: str | None = None,
        now: datetime | None = None,
        handshake_settle: float = 1.0,
    ) -> None:
        self.settings = settings
        self.probe_case = probe_case
        self.now = now or datetime.now(UTC)
        self.handshake_settle = handshake_settle
        self._client: PrimeroClient | None = None
        self._ping: PingClient | None = None
        self._memo: dict[str, Any] = {}

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._ping is not None:
            await self._ping.aclose()

    async def _once(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """``fetch()`` the first time; its result, or the same exception, every time."""
        if key not in self._memo:
            try:
                self._memo[key] = (True, await fetch())
            except Exception as exc:
                self._memo[key] = (False, exc)
        succeeded, value = self._memo[key]
        if succeeded:
            return value
        raise value

    # -------------------------------------------------------------- profile

    def profile(self) -> Profile:
        try:
            return load_profile(self.settings.profile)
        except ProfileError as exc:
            raise NotChecked("the profile is invalid") from exc

    # -------------------------------------------------------------- Primero

    def missing_primero_settings(self) -> list[str]:
        names = ("primero_url", "primero_username", "primero_password")
        return [env_name(n) for n in names if getattr(self.settings, n) in (None, "")]

    def client(self) -> PrimeroClient:
        if self.missing_primero_settings():
            raise NotChecked("Primero is not configured")
        if self._client is None:
            settings = self.settings
            password = settings.primero_password
            self._client = PrimeroClient(
                str(settings.primero_url),
                username=str(settings.primero_username),
                password=password.get_secret_value() if password is not None else "",
                auth=settings.primero_auth,
                timeout=settings.primero_timeout_seconds,
            )
        return self._client

    async def connection(self) -> CasePage:
        """The first call, ``GET /cases?per=1``: it proves reachability, TLS and credentials."""
        client = self.client()
        page: CasePage = await self._once("connection", lambda: client.search_cases([("per", "1")]))
        return page

    async def primero(self) -> PrimeroClient:
        """The client, once Primero has answered the first call."""
        try:
            await self.connection()
        except (TransientPeerError, PermanentPeerError) as exc:
            raise NotChecked("Primero did not answer the first call") from exc
        return self.client()

    async def own_user(self) -> dict[str, Any]:
        client = await self.primero()
        try:
            user: dict[str, Any] = await self._once("own_user", client.own_user)
        except ForbiddenError as exc:
            raise NotChecked(
                "the API user's role cannot be read without the users permission"
            ) from exc
        return user

    async def forms(self) -> FormIndex:
        client = await self.primero()
        module_id = self.profile().primero.module_id
        forms = await self._once("forms", lambda: client.list_forms(module_id=module_id))
        return FormIndex(forms)

    async def lookups(self) -> dict[str, set[str]]:
        client = await self.primero()
        lookups = await self._once("lookups", client.list_lookups)
        values: dict[str, set[str]] = {}
        for lookup in lookups:
            items = lookup.get("values")
            values[str(lookup.get("unique_id"))] = (
                {str(v.get("id")) for v in items if isinstance(v, dict)}
                if isinstance(items, list)
                else set()
            )
        return values

    # -------------------------------------------------------------- PING

    def missing_ping_settings(self) -> list[str]:
        settings = self.settings
        return [env_name(name) for name in PING_REQUIRED if _blank(getattr(settings, name))]

    def ping_client(self) -> PingClient:
        if self.missing_ping_settings():
            raise NotChecked("PING is not configured (see ping.settings)")
        if self._ping is None:
            self._ping = client_from_settings(self.settings)
        return self._ping

    async def ping_token(self) -> None:
        client = self.ping_client()
        await self._once("ping_token", client.authenticate)

    async def ping_page(self, process: str) -> PingPage:
        """Page 1 of the shipping process ``process`` (a ``ShippingProcesses`` field)."""
        client = self.ping_client()
        shipping_process_id = getattr(client.shipping_processes, process)
        page: PingPage = await self._once(
            f"ping:{process}", lambda: client.retrieve_page(shipping_process_id)
        )
        return page

    async def ping(self) -> PingClient:
        """The client, once APIM has let the first query through."""
        try:
            await self.ping_page("referrals_pending")
        except (TransientPeerError, PermanentPeerError) as exc:
            raise NotChecked("PING did not answer the first query (see ping.api)") from exc
        return self.ping_client()

    async def user(self, user_name: str) -> dict[str, Any] | None:
        client = await self.primero()
        try:
            found: dict[str, Any] | None = await self._once(
                f"user:{user_name}", lambda: client.get_user(user_name)
            )
        except ForbiddenError as exc:
            raise NotChecked("users cannot be listed (see primero.users_permission)") from exc
        return found


# ------------------------------------------------------------------ Primero checks


async def primero_settings(ctx: DoctorContext) -> Outcome:
    missing = ctx.missing_primero_settings()
    if missing:
        return fail(f"not set: {', '.join(missing)}", "set them (environment or --config file)")
    return ok(f"{ctx.settings.primero_url} as {ctx.settings.primero_username}")


async def primero_tls(ctx: DoctorContext) -> Outcome:
    plain = str(ctx.settings.primero_url).startswith("http://")
    try:
        await ctx.connection()
    except TransientPeerError as exc:
        if not plain and tls_failure(exc):
            return fail(
                "the TLS handshake failed (certificate not trusted, expired or for another name)",
                "fix Primero's certificate, or trust its CA on this machine",
            )
        if not plain:
            raise NotChecked("Primero is not reachable") from exc
    except PermanentPeerError:
        pass
    if plain:
        return warn(
            "plain http://: credentials and children's data cross the network unencrypted",
            "use https:// in production",
        )
    return ok("certificate verified")


async def primero_reachable(ctx: DoctorContext) -> Outcome:
    try:
        await ctx.connection()
    except TransientPeerError as exc:
        if tls_failure(exc):
            raise NotChecked("the TLS handshake failed (see primero.tls)") from exc
        return fail(
            f"no answer ({exc.reason})", "check PRIMERO_URL, the network and Primero's health"
        )
    except PermanentPeerError:
        pass
    return ok("Primero answered")


async def primero_credentials(ctx: DoctorContext) -> Outcome:
    mode = ctx.settings.primero_auth
    try:
        page = await ctx.connection()
    except TokenNotIssuedError:
        return fail(
            "token login answered without a token (Primero v2.11 or later)",
            f"set {env_name('primero_auth')}=basic",
        )
    except AuthenticationError:
        return fail(
            f"credentials refused in {mode} mode (wrong password, locked or disabled account)",
            "check PRIMERO_USERNAME and PRIMERO_PASSWORD; unlock the account in Primero",
        )
    except ForbiddenError:
        return fail(
            "the API user may not list cases",
            "give the API user's role the case permissions (read, create, write, referral)",
        )
    except PermanentPeerError as exc:
        return fail(f"unexpected answer to GET /cases ({exc.reason})", "is PRIMERO_URL Primero v2?")
    except TransientPeerError as exc:
        raise NotChecked("Primero is not reachable") from exc
    return ok(f"accepted in {mode} mode; {page.total} case(s) visible")


async def primero_per(ctx: DoctorContext) -> Outcome:
    client = await ctx.primero()
    one = await client.search_cases([("per", "1")])
    if one.per != 1 or len(one.cases) > 1:
        return fail(
            f"per=1 answered {len(one.cases)} case(s) with per={one.per}: paging is not honoured",
            "check a proxy in front of Primero does not rewrite the query string",
        )
    full = await client.search_cases([("per", str(client.page_size))])
    if full.per < client.page_size:
        return ok(f"honoured; Primero caps per at {full.per}, the bridge pages by {full.per}")
    return ok(f"honoured (per={full.per})")


def _impossible() -> str:
    return f"primero-progres-doctor-{uuid.uuid4().hex}"


FILTER_PROBES: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "unhcr_individual_no": lambda: [("unhcr_individual_no", _impossible())],
    "case_id": lambda: [("case_id", str(uuid.uuid4()))],
    "associated_user_names": lambda: [("associated_user_names[0]", _impossible())],
    "last_updated_at": lambda: [("last_updated_at", "2999-01-01T00:00:00Z..")],
}
FILTER_USE = {
    "unhcr_individual_no": "flow 1 would update another child's case or create duplicates",
    "case_id": "flow 4 would not find the case of a decision",
    "associated_user_names": "flow 3 would read every case instead of the UNHCR caseworkers'",
    "last_updated_at": "polls would read every case every time",
}


def filter_check(field: str) -> Check:
    """The filter on ``field`` is applied: a value that cannot exist must find nothing."""

    async def run(ctx: DoctorContext) -> Outcome:
        client = await ctx.primero()
        baseline = (await ctx.connection()).total
        if baseline == 0:
            return warn(
                "no case is visible, so a dropped filter cannot be told from an applied one",
                "run doctor again once Primero holds a case",
            )
        probe = await client.search_cases([*FILTER_PROBES[field](), ("per", "1")])
        if probe.total:
            return fail(
                f"dropped silently: {probe.total} of {baseline} case(s) match an impossible "
                f"value; {FILTER_USE[field]}",
                f"give the API user's role read access to the form holding {field}",
            )
        return ok(f"applied (0 of {baseline} case(s) match an impossible value)")

    return Check(f"primero.filter.{field}", run)


async def primero_scope(ctx: DoctorContext) -> Outcome:
    scope = (await ctx.own_user()).get("role_group_permission")
    if scope == "all":
        return ok("all: case search covers every case")
    if scope == "self":
        return fail(
            "self: searches only cover cases the API user is associated with; flow 1 would "
            "create duplicate cases, flows 3 and 4 would miss referrals",
            "give the API user's role the 'all' scope (group permission)",
        )
    return warn(
        f"{scope}: cases outside the API user's {scope} are invisible, so a child known there "
        "would get a duplicate case",
        "prefer the 'all' scope for the API user's role",
    )


async def primero_probe_case(ctx: DoctorContext) -> Outcome:
    if ctx.probe_case is None:
        return warn(
            "no probe case given",
            "run with --probe-case CASE_ID of a case the API user is not associated with",
        )
    client = await ctx.primero()
    probe = ctx.probe_case
    page = await client.search_cases([("case_id", probe), ("per", "2")])
    if any(case.get("case_id") == probe or case.get("id") == probe for case in page.cases):
        return ok(f"case {probe} is visible")
    try:
        await client.get_case(probe)
    except ForbiddenError:
        return fail(
            f"case {probe} exists but is outside the API user's scope",
            "give the API user's role the 'all' scope (group permission)",
        )
    except PermanentPeerError:
        return fail(
            f"case {probe} is not visible to the API user (outside its scope, or no such case)",
            "check the case id; give the API user's role the 'all' scope",
        )
    return ok(f"case {probe} is visible")


async def primero_users_permission(ctx: DoctorContext) -> Outcome:
    client = await ctx.primero()
    try:
        await client.get_user(str(ctx.settings.primero_username))
    except ForbiddenError:
        return fail(
            "GET /users is forbidden: flow 3 cannot read the referring caseworker's contact "
            "details, and doctor cannot check the users the profile names",
            "give the API user's role the Users permission 'read'",
        )
    return ok("GET /users allowed")


# ------------------------------------------------------------------ webhooks and sync status


def bridge_webhook_prefix(settings: Settings) -> str:
    """The URL Primero's webhook to this bridge starts with (a token may follow it)."""
    return f"{settings.public_url}{WEBHOOK_PATH}" if settings.public_url else WEBHOOK_PATH


def is_bridge_webhook(url: Any, settings: Settings) -> bool:
    if not isinstance(url, str):
        return False
    if settings.public_url is None:
        return WEBHOOK_PATH in url
    prefix = bridge_webhook_prefix(settings)
    return url == prefix or url.startswith(prefix + "/")


async def primero_webhook(ctx: DoctorContext) -> Outcome:
    if not ctx.settings.webhooks:
        return ok(f"not used: {env_name('webhooks')} is false (flows 2 and 3 only poll)")
    client = await ctx.primero()
    try:
        webhooks = await client.list_webhooks()
    except ForbiddenError:
        return warn(
            "the API user's role cannot list Primero's webhooks: not checked",
            "give the role the webhook permission 'read', or look in Primero's admin",
        )
    prefix = bridge_webhook_prefix(ctx.settings)
    ours = [w for w in webhooks if is_bridge_webhook(w.get("url"), ctx.settings)]
    if not ours:
        return fail(
            f"no Primero webhook posts to {prefix}: flows 2 and 3 wait for their polls",
            "primero-progres primero register-webhook --url PUBLIC_URL",
        )
    listening = [w for w in ours if "case.update" in _events(w.get("events"))]
    if not listening:
        return fail(
            f"Primero's webhook to {prefix} does not listen for case.update",
            "delete it in Primero, then primero-progres primero register-webhook",
        )
    return ok(f"webhook {listening[0].get('id')} posts case.update to {prefix}")


def _events(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


async def primero_module_webhooks(ctx: DoctorContext) -> Outcome:
    if not ctx.settings.webhooks:
        return ok(f"not used: {env_name('webhooks')} is false")
    module = ctx.profile().primero.module_id
    client = await ctx.primero()
    try:
        modules = await client.list_modules()
    except ForbiddenError:
        return warn(
            f"the API user's role cannot read the modules: whether {module} posts its cases "
            "to the webhooks is not checked",
            f"a Primero administrator checks that module {module} has use_webhooks_for: case",
        )
    found = next((m for m in modules if m.get("unique_id") == module), None)
    if found is None:
        return fail(f"Primero lists no module {module}", "check primero.module_id in the profile")
    options = found.get("module_options")
    uses = options.get("use_webhooks_for") if isinstance(options, dict) else None
    if not isinstance(uses, list) or "case" not in uses:
        return fail(
            f"module {module} posts no case to the webhooks (use_webhooks_for: {uses})",
            f'a Primero administrator sets the option use_webhooks_for of {module} to ["case"]',
        )
    return ok(f"module {module} posts every case create and update to the webhooks")


async def primero_sync_external(ctx: DoctorContext) -> Outcome:
    if not ctx.settings.mark_synced:
        return ok(f"not used: {env_name('mark_synced')} is false")
    if ctx.settings.unhcr_gateway != "dtp":
        return warn(
            f"{env_name('mark_synced')} marks only what goes through DTP: nothing over PING",
            f"unset {env_name('mark_synced')}",
        )
    user = await ctx.own_user()
    permissions = user.get("permissions")
    listed = permissions.get("list") if isinstance(permissions, dict) else None
    case_actions = next(
        (
            p.get("actions") or []
            for p in listed or []
            if isinstance(p, dict) and p.get("resource") == "cases"
        ),
        [],
    )
    if "sync_external" not in case_actions and "manage" not in case_actions:
        return fail(
            "the API user's role lacks the case permission sync_external: Primero drops the "
            "sync status without a word",
            "give the API user's role the case permission 'sync_external'",
        )
    return ok("the API user's role may write the sync status (sync_external)")


# ------------------------------------------------------------------ profile checks


async def profile_valid(ctx: DoctorContext) -> Outcome:
    try:
        profile = load_profile(ctx.settings.profile)
    except ProfileError as exc:
        first = "; ".join(str(p) for p in exc.problems[:3])
        return fail(f"{len(exc.problems)} problem(s): {first}", "primero-progres profile check")
    return ok(f"{profile.name}: module {profile.primero.module_id}")


async def profile_module(ctx: DoctorContext) -> Outcome:
    profile = ctx.profile()
    forms = await ctx.forms()
    module = profile.primero.module_id
    if not [form for form in forms.forms if not form.get("is_nested")]:
        return fail(
            f"Primero has no case forms in module {module}",
            "check primero.module_id in the profile against Primero's modules",
        )
    try:
        modules = (await ctx.own_user()).get("module_unique_ids")
    except NotChecked:
        return ok(f"{module} has {len(forms.forms)} case form(s)")
    if isinstance(modules, list) and module not in modules:
        return fail(
            f"the API user's role does not include module {module}",
            f"add {module} to the API user's role",
        )
    return ok(f"{module} exists and the API user's role includes it")


async def profile_lookups(ctx: DoctorContext) -> Outcome:
    forms = await ctx.forms()
    lookups = await ctx.lookups()
    problems = []
    checked = 0
    for field, codes in sorted(flow1.written_codes(ctx.profile()).items()):
        lookup = forms.lookup_of(field)
        if lookup is None:
            continue  # free values, or a field missing from the forms (profile.writable_fields)
        if lookup not in lookups:
            problems.append(f"{field}: lookup {lookup} does not exist")
            continue
        checked += 1
        missing = sorted(codes - lookups[lookup])
        if missing:
            problems.append(f"{field}: {', '.join(missing)} not in {lookup}")
    if problems:
        return fail(
            "codes Primero would refuse (422 Invalid Record JSON): " + "; ".join(problems),
            "add the codes to the lookups in Primero, or correct the profile's tables",
        )
    return ok(f"every code the profile writes is in its lookup ({checked} field(s) checked)")


async def profile_translatable_codes(ctx: DoctorContext) -> Outcome:
    forms = await ctx.forms()
    lookups = await ctx.lookups()
    untranslated = []
    profile = ctx.profile()
    over_ping = ctx.settings.unhcr_gateway == "ping" and profile.ping is not None
    translated = ping_mapping.translated_codes(profile) if over_ping else flow3.translated_codes(
        profile
    )
    for field, codes in sorted(translated.items()):
        lookup = forms.lookup_of(field)
        extra = sorted(lookups.get(lookup, set()) - codes) if lookup else []
        if extra:
            untranslated.append(f"{field}: {', '.join(extra)}")
    if untranslated:
        return warn(
            f"Primero codes flow 3 cannot translate for {'PING' if over_ping else 'DTP'} (a "
            "referral using one becomes an unknown_code dead letter): " + "; ".join(untranslated),
            "add them to ping.primero_referral.requested_services / sex in the profile"
            if over_ping
            else "add them to primero_referral.service_types / languages in the profile",
        )
    if over_ping:
        return ok("flow 3 can translate every service type and sex code for PING")
    return ok("flow 3 can translate every service type and language code")


def _permitted_forms(user: Mapping[str, Any]) -> dict[str, str]:
    permitted = user.get("permitted_form")
    return {str(k): str(v) for k, v in permitted.items()} if isinstance(permitted, dict) else {}


def _missing(
    forms: FormIndex, fields: Iterable[str], permitted: Mapping[str, str], levels: Sequence[str]
) -> list[str]:
    return [
        field
        for field in fields
        if not any(permitted.get(form) in levels for form, _ in forms.places(field))
    ]


async def profile_writable_fields(ctx: DoctorContext) -> Outcome:
    user = await ctx.own_user()
    forms = await ctx.forms()
    fields = [f for f in flow1.written_fields() if f not in CORE_WRITABLE]
    missing = _missing(forms, fields, _permitted_forms(user), ("rw",))
    if missing:
        return fail(
            "Primero would drop these silently from every write: " + ", ".join(missing),
            f"put them on forms of {ctx.profile().primero.module_id} the API user's role may "
            "read and write",
        )
    return ok(f"the {len(fields)} form fields flow 1 writes are on read-write forms")


async def profile_readable_fields(ctx: DoctorContext) -> Outcome:
    user = await ctx.own_user()
    forms = await ctx.forms()
    wanted = sorted({*flow1.READ_FIELDS, *flow3.READ_FIELDS} - ALWAYS_PERMITTED)
    missing = _missing(forms, wanted, _permitted_forms(user), ("r", "rw"))
    if missing:
        return fail(
            "the API user cannot read: " + ", ".join(missing),
            "give the API user's role read access to the forms holding them",
        )
    return ok(f"the {len(wanted)} form fields the flows read are readable")


def users_check(name: str, what: str, names: Callable[[Profile], Sequence[str]]) -> Check:
    """The Primero users a profile names exist and are enabled."""

    async def run(ctx: DoctorContext) -> Outcome:
        wanted = list(dict.fromkeys(names(ctx.profile())))
        absent, disabled = [], []
        for user_name in wanted:
            user = await ctx.user(user_name)
            if user is None:
                absent.append(user_name)
            elif user.get("disabled") is True:
                disabled.append(user_name)
        problems = [
            f"{label}: {', '.join(users)}"
            for label, users in (("missing", absent), ("disabled", disabled))
            if users
        ]
        if problems:
            return fail(
                f"{what}: " + "; ".join(problems),
                "create or enable them in Primero, or correct the profile",
            )
        return ok(f"{what}: all {len(wanted)} exist and are enabled")

    return Check(name, run)


# ------------------------------------------------------------------ DTP checks


def _blank(value: Any) -> bool:
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return value is None or (isinstance(value, str) and not value.strip())


def for_gateway(gateway: str, run: CheckRun) -> CheckRun:
    """A check of one UNHCR gateway: the other gateway's deployments do not use it."""

    async def checked(ctx: DoctorContext) -> Outcome:
        if ctx.settings.unhcr_gateway != gateway:
            return ok(f"not used: {env_name('unhcr_gateway')} is {ctx.settings.unhcr_gateway}")
        return await run(ctx)

    return checked


def _tls_files_set(settings: Settings) -> bool:
    return settings.dtp_client_cert is not None or settings.dtp_client_pkcs12 is not None


async def dtp_settings(ctx: DoctorContext) -> Outcome:
    settings = ctx.settings
    missing = [
        env_name(n) for n in ("dtp_url", "dtp_subscription_key") if getattr(settings, n) is None
    ]
    if missing:
        return fail(f"not set: {', '.join(missing)}", "set them (environment or --config file)")
    return ok(str(settings.dtp_url))


def _dtp_context(settings: Settings) -> ssl.SSLContext:
    password = settings.dtp_client_pkcs12_password
    return client_ssl_context(
        client_cert=settings.dtp_client_cert,
        client_key=settings.dtp_client_key,
        pkcs12_file=settings.dtp_client_pkcs12,
        pkcs12_password=password.get_secret_value() if password is not None else None,
        ca=settings.dtp_ca,
    )


async def dtp_tls(ctx: DoctorContext) -> Outcome:
    settings = ctx.settings
    if settings.dtp_url is None:
        raise NotChecked("DTP_URL is not set")
    if settings.dtp_url.startswith("http://"):
        return warn(
            "plain http://: no TLS and no client certificate",
            "use the gateway's https:// URL in production",
        )
    try:
        context = _dtp_context(settings)
    except ConfigurationError as exc:
        return fail(exc.message, "fix the DTP certificate settings")
    try:
        await handshake(
            settings.dtp_url,
            context,
            timeout=settings.dtp_timeout_seconds,
            settle=ctx.handshake_settle,
        )
    except ssl.SSLCertVerificationError as exc:
        return fail(
            f"DTP's server certificate is not trusted ({exc.verify_message})",
            f"set {env_name('dtp_ca')} to the CA that signed the gateway's certificate",
        )
    except (ssl.SSLError, HandshakeRefused, ConnectionResetError) as exc:
        return fail(
            f"DTP refused the TLS session ({type(exc).__name__})",
            "check the client certificate DTP pinned is the one configured",
        )
    except (OSError, TimeoutError) as exc:
        return fail(f"no TLS connection ({type(exc).__name__})", "check DTP_URL and the network")
    who = "with the client certificate" if _tls_files_set(settings) else "without a certificate"
    return ok(f"handshake {who} accepted; server certificate trusted")


async def dtp_client_certificate(ctx: DoctorContext) -> Outcome:
    settings = ctx.settings
    if not _tls_files_set(settings):
        if settings.dtp_url is not None and settings.dtp_url.startswith("https://"):
            return warn("no client certificate configured", "DTP pins a client certificate")
        raise NotChecked("no client certificate configured (plain http:// peer)")
    try:
        certificate = settings.dtp_client_certificate()
    except ConfigurationError as exc:
        return fail(exc.message, "fix DTP_CLIENT_CERT / DTP_CLIENT_PKCS12")
    if certificate is None:
        return fail("the PKCS#12 bundle holds no certificate", "export it again with its chain")
    expires = certificate.not_valid_after_utc
    day = expires.date().isoformat()
    if expires <= ctx.now:
        return fail(f"expired on {day}", "make a new client certificate and send it to UNHCR")
    if expires - ctx.now < EXPIRY_WARNING:
        return warn(f"expires on {day}", "renew it now and send the new one to UNHCR")
    return ok(f"valid until {day}")


# ------------------------------------------------------------------ PING checks

#: an id no proGres row has: a detail query for it proves the shipping process answers
NO_SUCH_RECORD = "00000000-0000-0000-0000-000000000000"
#: the shipping processes doctor queries (the three ingestion ones would write)
QUERIED = ("referrals_pending", "referral_detail", "decisions_list", "decision_detail")


async def ping_settings(ctx: DoctorContext) -> Outcome:
    missing = ctx.missing_ping_settings()
    if missing:
        return fail(f"not set: {', '.join(missing)}", "set them (environment or --config file)")
    return ok(f"{ctx.settings.ping_url}, partner {ctx.settings.ping_partner_id}")


async def ping_profile(ctx: DoctorContext) -> Outcome:
    profile = ctx.profile()
    if profile.ping is None:
        return fail(
            f"profile {profile.name} has no ping section: PING's rows cannot be read",
            "add the ping section (docs/ping.md); primero-progres profile check --gateway ping",
        )
    return ok(f"{profile.name} has a ping section")


async def ping_token(ctx: DoctorContext) -> Outcome:
    try:
        await ctx.ping_token()
    except PingAuthenticationError as exc:
        detail = f" ({exc.details[0]})" if exc.details else ""
        return fail(
            f"the token endpoint refused the service account: {exc.reason}{detail}",
            "check PING_CLIENT_ID, PING_USERNAME, PING_PASSWORD, PING_SCOPE, PING_TOKEN_PATH",
        )
    except TransientPeerError as exc:
        return fail(f"no token: {exc.reason}", "check PING_TOKEN_URL and the network")
    return ok("the token endpoint issued a token")


async def ping_api(ctx: DoctorContext) -> Outcome:
    """The subscription key and the token, at APIM, on the first query."""
    try:
        await ctx.ping_token()
    except (TransientPeerError, PermanentPeerError) as exc:
        raise NotChecked("no token (see ping.token)") from exc
    try:
        await ctx.ping_page("referrals_pending")
    except PingAuthenticationError as exc:
        if exc.reason == "subscription_key_refused":
            return fail(
                "APIM refused the subscription key",
                f"check {env_name('ping_subscription_key')} with UNHCR",
            )
        return fail(
            f"APIM refused a fresh token ({exc.reason})",
            "check PING_SCOPE and that the service account may use the API",
        )
    except TransientPeerError as exc:
        return fail(f"PING did not answer ({exc.reason})", "check PING_URL and the network")
    except PermanentPeerError:
        pass  # APIM let it through; ping.shipping_processes says what PING made of it
    return ok("APIM accepted the subscription key and the token")


async def ping_shipping_processes(ctx: DoctorContext) -> Outcome:
    client = await ctx.ping()
    ids = client.shipping_processes
    problems = []
    for process in QUERIED:
        shipping_process_id = getattr(ids, process)
        try:
            if process.endswith("_detail"):
                await client.retrieve_page(shipping_process_id, record_ids=NO_SUCH_RECORD)
            else:
                await ctx.ping_page(process)
        except PingRejectedError:
            problems.append(f"{shipping_process_id} ({process}): PING answered an ErrorMessage")
        except (TransientPeerError, PermanentPeerError) as exc:
            problems.append(f"{shipping_process_id} ({process}): {exc.reason}")
    if problems:
        return fail(
            "; ".join(problems),
            "check the PING_SHP_* ids, PING_PARTNER_ID and PING_INTEROP_ID with UNHCR",
        )
    writes = ", ".join(getattr(ids, p) for p in
                       ("intervention_update", "referral_create", "referral_update"))
    return ok(f"the {len(QUERIED)} queries answer (not probed, doctor writes nothing: {writes})")


async def ping_status_codes(ctx: DoctorContext) -> Outcome:
    """The status codes PING's lists hold are codes the profile's ping section knows."""
    tables = ctx.profile().ping
    if tables is None:
        raise NotChecked("the profile has no ping section")
    await ctx.ping()
    lists = (
        ("referrals_pending", tables.progres_referral.transfer_status,
         set(tables.transfer_status.model_dump().values()), "transfer_status"),
        ("decisions_list", tables.progres_decision.status,
         set(tables.referral_status.model_dump().values()), "referral_status"),
    )
    unknown: list[str] = []
    rows = 0
    for process, alias, codes, table in lists:
        try:
            page = await ctx.ping_page(process)
        except (TransientPeerError, PermanentPeerError) as exc:
            raise NotChecked(f"{process} did not answer (see ping.shipping_processes)") from exc
        rows += len(page.rows)
        found = {row.get(alias) for row in page.rows} - {None}
        strange = sorted(str(code) for code in found if _code_of(code) not in codes)
        if strange:
            unknown.append(f"{alias}: {', '.join(strange)} (not in ping.{table})")
    if unknown:
        return fail(
            "PING's lists hold codes the profile does not know: " + "; ".join(unknown),
            "ask UNHCR what they mean and add them to the profile's ping section",
        )
    if not rows:
        return warn("both lists are empty: no status code to compare yet")
    return ok(f"every status in the first pages ({rows} row(s)) is a code the profile knows")


def _code_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    return None


# ------------------------------------------------------------------ running


DEFAULT_CHECKS: tuple[Check, ...] = (
    Check("profile.valid", profile_valid),
    Check("primero.settings", primero_settings),
    Check("primero.tls", primero_tls),
    Check("primero.reachable", primero_reachable),
    Check("primero.credentials", primero_credentials),
    Check("primero.per", primero_per),
    *(filter_check(field) for field in FILTER_PROBES),
    Check("primero.scope", primero_scope),
    Check("primero.probe_case", primero_probe_case),
    Check("primero.users_permission", primero_users_permission),
    Check("profile.module", profile_module),
    Check("profile.lookups", profile_lookups),
    Check("profile.flow3_codes", profile_translatable_codes),
    Check("profile.writable_fields", profile_writable_fields),
    Check("profile.readable_fields", profile_readable_fields),
    users_check(
        "profile.focal_point_users",
        "focal-point users",
        lambda p: [p.focal_point.default_user, *(r.user for r in p.focal_point.routes)],
    ),
    users_check("profile.unhcr_caseworkers", "UNHCR caseworkers", lambda p: p.unhcr_caseworkers),
    Check("primero.webhook", primero_webhook),
    Check("primero.module_webhooks", primero_module_webhooks),
    Check("primero.sync_external", primero_sync_external),
    Check("dtp.settings", for_gateway("dtp", dtp_settings)),
    Check("dtp.tls", for_gateway("dtp", dtp_tls)),
    Check("dtp.client_certificate", for_gateway("dtp", dtp_client_certificate)),
    Check("ping.settings", for_gateway("ping", ping_settings)),
    Check("ping.profile", for_gateway("ping", ping_profile)),
    Check("ping.token", for_gateway("ping", ping_token)),
    Check("ping.api", for_gateway("ping", ping_api)),
    Check("ping.shipping_processes", for_gateway("ping", ping_shipping_processes)),
    Check("ping.status_codes", for_gateway("ping", ping_status_codes)),
)

_PEER_NAMES = {"primero": "Primero", "dtp": "DTP", "ping": "PING"}


async def run_check(ctx: DoctorContext, check: Check) -> Finding:
    """One finding; a check that cannot run says why, one that breaks is a FAIL."""
    try:
        outcome = await check.run(ctx)
    except NotChecked as exc:
        outcome = warn(f"not checked: {exc}")
    except (TransientPeerError, PermanentPeerError) as exc:
        peer = _PEER_NAMES.get(exc.peer, exc.peer) if isinstance(exc, PeerError) else "Primero"
        outcome = fail(f"{peer} answered {exc.reason}", "see the other findings")
    except Exception as exc:  # a broken check must not hide the others
        outcome = fail(f"the check failed ({type(exc).__name__})", "report it")
    return Finding(check.name, outcome.status, outcome.message, outcome.action)


async def run_checks(ctx: DoctorContext, checks: Sequence[Check] = DEFAULT_CHECKS) -> list[Finding]:
    try:
        return [await run_check(ctx, check) for check in checks]
    finally:
        await ctx.aclose()


def passed(findings: Iterable[Finding]) -> bool:
    return all(f.status is not Status.FAIL for f in findings)
