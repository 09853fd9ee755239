"""Privacy commands: `faceloop consent add|list|check|revoke` and `faceloop erase`."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from faceloop.cli.console import api, console, fail, group, run
from faceloop.errors import FaceloopError

if TYPE_CHECKING:
    from temporalio.client import Client

    from faceloop.consent import RegisteredConsent
    from faceloop.erasure import ErasureInput, ErasureReport
    from faceloop.settings import Settings
    from faceloop.storage.catalog import Catalog


ByOpt = Annotated[
    str,
    typer.Option(
        "--by",
        envvar="FACELOOP_OPERATOR",
        help="who acts (default: $FACELOOP_OPERATOR, else the login name); recorded in the "
        "audit log. Ignored through FACELOOP_API_URL: the token's user acts",
    ),
]
TicketOpt = Annotated[
    str,
    typer.Option(help="id of the data-subject request (e.g. DSR-2031-17); an id, not prose"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("erase")(erase)
    consent = group(
        "The consent registry (GDPR Art. 9, KUG): a persona is usable only with a valid record."
    )
    consent.command("add")(consent_add)
    consent.command("list")(consent_list)
    consent.command("check")(consent_check)
    consent.command("revoke")(consent_revoke)
    app.add_typer(consent, name="consent")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _catalog() -> Catalog:
    from faceloop.settings import get_settings
    from faceloop.storage.catalog import Catalog

    return Catalog(get_settings().resolved_database_url)


def _consent_json(c: RegisteredConsent) -> dict[str, Any]:
    return c.model_dump(mode="json")


def _state(c: RegisteredConsent) -> str:
    import datetime as dt

    if c.erased_at:
        return "erased"
    if c.revoked_at:
        return "revoked"
    return "expired" if c.expires < dt.datetime.now(dt.UTC).date() else "live"


# --------------------------------------------------------------------------- consent


def consent_add(
    file: Annotated[Path, typer.Argument(help="consent record (YAML or JSON)")],
    by: ByOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Record a signed consent: persona, subject, scope, markets, expiry, evidence sha256.

    An `evidence:` file named in the record must hash to its evidence_sha256. Records are
    immutable: the same id with other content is refused.
    """
    from faceloop.consent import load_consent

    try:
        record = load_consent(file, scope=None)
        with _catalog() as catalog:
            kept = catalog.record_consent(record, by or _user())
    except FaceloopError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(_consent_json(kept), indent=2))
        return
    console.print(
        f"recorded consent [bold]{kept.consent_id}[/bold] for persona {kept.persona_id!r}: "
        f"{', '.join(kept.scope)} in {', '.join(kept.markets)} until {kept.expires}"
    )


def consent_list(
    persona: Annotated[str | None, typer.Option(help="only this persona's records")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The consent records, oldest first, with their state (live, expired, revoked, erased);
    through the console's API when FACELOOP_API_URL is set (compliance or admin)."""
    from faceloop.consent import RegisteredConsent
    from faceloop.settings import get_settings

    settings = get_settings()
    if settings.api_url:
        rows = api(settings, "GET", "/api/v1/consents", params={"persona_id": persona})
        records = [RegisteredConsent.model_validate(r) for r in rows]
    else:
        try:
            with _catalog() as catalog:
                records = catalog.consents(persona)
        except FaceloopError as exc:
            raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps([_consent_json(c) | {"state": _state(c)} for c in records], indent=2))
        return
    if not records:
        console.print("no consent records" + (f" for persona {persona!r}" if persona else ""))
        return
    table = Table("consent", "persona", "subject", "scope", "markets", "expires", "state")
    for c in records:
        state = _state(c)
        if c.revoked_at:
            state += f" {c.revoked_at:%Y-%m-%d}"
        table.add_row(
            c.consent_id,
            c.persona_id,
            c.subject_name or "-",
            ", ".join(c.scope),
            ", ".join(c.markets),
            str(c.expires),
            state,
        )
    console.print(table)


def consent_check(
    persona: Annotated[str, typer.Argument(help="persona id")],
    markets: Annotated[
        str, typer.Option(help="comma-separated ISO codes, e.g. DE,FR; empty: any market")
    ] = "",
    scope: Annotated[str, typer.Option(help="the use to check, e.g. ads")] = "ads",
    as_json: JsonOpt = False,
) -> None:
    """Whether the persona may be used now; exit code 1 when it may not."""
    wanted = [m.strip().upper() for m in markets.split(",") if m.strip()]
    try:
        with _catalog() as catalog:
            status = catalog.consent_status(persona, wanted, scope=scope)
    except FaceloopError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(status.model_dump(mode="json"), indent=2))
    else:
        colour = "green" if status.ok else "red"
        console.print(
            f"[{colour}]{escape(str(status.state.value))}[/{colour}]: {escape(str(status.reason))}"
        )
    if not status.ok:
        raise typer.Exit(1)


def consent_revoke(
    consent_id: Annotated[str, typer.Argument(help="the consent to revoke")],
    reason: Annotated[
        str, typer.Option(help="why (kept with the record; the audit log gets its hash)")
    ],
    no_erase: Annotated[
        bool, typer.Option("--no-erase", help="revoke only; do not start the persona's erasure")
    ] = False,
    wait: Annotated[bool, typer.Option(help="wait for the erasure and print its report")] = False,
    by: ByOpt = "",
    ticket: TicketOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Revoke a consent: the persona's campaigns stop at their next consent check, and,
    unless --no-erase or another live consent remains, the persona's erasure starts.

    With FACELOOP_API_URL set, the console does it as the token's user (compliance or admin;
    --by is ignored, --wait is refused).
    """
    from faceloop.erasure import ErasureInput
    from faceloop.settings import get_settings
    from faceloop.workflows.client import reachable_client

    settings = get_settings()
    if settings.api_url:
        _revoke_via_api(settings, consent_id, reason, not no_erase, wait, ticket, as_json)
        return
    try:
        with _catalog() as catalog:
            revoked = catalog.revoke_consent(consent_id, reason, by or _user())
            remaining = [
                c.consent_id
                for c in catalog.consents(revoked.persona_id)
                if c.revoked_at is None and c.erased_at is None
            ]
    except FaceloopError as exc:
        raise fail(exc) from exc
    out: dict[str, Any] = {"revoked": _consent_json(revoked), "erasure": None}
    lines = [f"consent {consent_id} of persona {revoked.persona_id!r} revoked"]
    report: ErasureReport | None = None
    if no_erase:
        lines.append("erasure not started (--no-erase)")
    elif remaining:
        lines.append(
            f"erasure not started: persona {revoked.persona_id!r} still has live consent(s) "
            f"{', '.join(remaining)}; if the subject asked for erasure, revoke those too or "
            f"run `faceloop erase --persona {revoked.persona_id}`"
        )
    else:
        inp = ErasureInput(
            kind="persona", target=revoked.persona_id, requested_by=by or _user(), ticket=ticket
        )

        async def start() -> tuple[str, bool, ErasureReport | None] | FaceloopError:
            try:
                client = await reachable_client(settings)
            except FaceloopError as exc:
                return exc  # revoked all the same; say so below
            return await _erase(client, settings, inp, wait)

        started = run(start())
        if isinstance(started, FaceloopError):
            lines.append(
                f"[yellow]erasure NOT started[/yellow]: {started}. Once the stack runs, start "
                f"it with `faceloop erase --persona {revoked.persona_id}`"
            )
        else:
            wid, attached, report = started
            out["erasure"] = {"workflow_id": wid, "attached": attached}
            lines.append(
                f"erasure {'already running as' if attached else 'started as'} workflow {wid}"
                + ("" if wait else f"; `faceloop erase --persona {inp.target} --wait` follows it")
            )
    if report is not None:
        out["erasure"]["report"] = report.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        for line in lines:
            console.print(line)
        if report is not None:
            _print_report(report)
    if report is not None and report.incomplete:
        raise typer.Exit(1)


def _revoke_via_api(
    settings: Settings,
    consent_id: str,
    reason: str,
    erase: bool,
    wait: bool,
    ticket: str,
    as_json: bool,
) -> None:
    """The console revokes and starts the erasure as the token's user (--by is ignored)."""
    if wait:
        raise fail(_NO_WAIT)
    done = api(
        settings,
        "POST",
        f"/api/v1/consents/{consent_id}/revoke",
        {"reason": reason, "erase": erase, "ticket": ticket},
    )
    if as_json:
        typer.echo(json.dumps(done, indent=2))
        return
    console.print(f"consent {escape(consent_id)} of persona {done['persona_id']!r} revoked")
    wid = done["erasure_workflow_id"]
    console.print(f"erasure started as workflow {escape(wid)}" if wid else escape(done["note"]))


_NO_WAIT = FaceloopError(
    "--wait is not available through the console's API (FACELOOP_API_URL): start without it "
    "and follow the workflow in Temporal's UI, or unset FACELOOP_API_URL"
)


# --------------------------------------------------------------------------- erase


def erase(
    asset: Annotated[str | None, typer.Option(help="asset id (sha256) to erase")] = None,
    persona: Annotated[str | None, typer.Option(help="persona id to erase")] = None,
    campaign: Annotated[
        str | None, typer.Option(help="campaign id to erase (its brief's text, variants, ads)")
    ] = None,
    wait: Annotated[bool, typer.Option(help="wait for the erasure and print its report")] = False,
    by: ByOpt = "",
    ticket: TicketOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Erase an asset, a persona or a campaign everywhere (GDPR Art. 17), as a durable
    workflow.

    Takes the ads down on every platform, deletes the files and their exported copies,
    tombstones the catalog rows, crypto-shreds a persona's embeddings and LoRA and the
    briefs' text of the campaigns erased, and writes the audit entry. Safe to run again:
    a second run removes nothing more. Exit code 1 if the report lists anything that
    needs a person. With FACELOOP_API_URL set, the console starts it as the token's user
    (compliance or admin; --by is ignored, --wait is refused).
    """
    from pydantic import ValidationError

    from faceloop.erasure import ErasureInput, ErasureKind
    from faceloop.settings import get_settings
    from faceloop.workflows.client import reachable_client

    named: list[tuple[ErasureKind, str | None]] = [
        ("asset", asset),
        ("persona", persona),
        ("campaign", campaign),
    ]
    given = [(k, v) for k, v in named if v is not None]
    if len(given) != 1:
        raise fail(FaceloopError("give exactly one of --asset ID, --persona ID or --campaign ID"))
    ((kind, target),) = given
    try:
        inp = ErasureInput(
            kind=kind,
            target=target,
            requested_by=by or _user(),
            ticket=ticket,
        )
    except ValidationError as exc:
        raise fail(FaceloopError(exc.errors()[0]["msg"].removeprefix("Value error, "))) from exc
    settings = get_settings()
    if settings.api_url:
        # the console starts it as the token's user: --by is ignored
        if wait:
            raise fail(_NO_WAIT)
        done = api(
            settings, "POST", "/api/v1/erasure", {"kind": kind, "target": target, "ticket": ticket}
        )
        if as_json:
            typer.echo(json.dumps(done))
        else:
            console.print(
                f"erasure started as workflow {escape(done['workflow_id'])} by "
                f"{escape(done['requested_by'])}"
            )
        return

    async def main() -> tuple[str, bool, ErasureReport | None]:
        return await _erase(await reachable_client(settings), settings, inp, wait)

    wid, attached, report = run(main())
    if report is None:
        msg = f"erasure {'already running as' if attached else 'started as'} workflow {wid}"
        if as_json:
            typer.echo(json.dumps({"workflow_id": wid, "attached": attached}))
        else:
            console.print(f"{escape(str(msg))}; add --wait to follow it to its report")
        return
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        _print_report(report)
    if report.incomplete:
        raise typer.Exit(1)


async def _erase(
    client: Client, settings: Settings, inp: ErasureInput, wait: bool
) -> tuple[str, bool, ErasureReport | None]:
    from temporalio.client import WorkflowFailureError

    from faceloop.workflows.client import start_erasure

    handle, attached = await start_erasure(client, settings, inp)
    if not wait:
        return handle.id, attached, None
    try:
        return handle.id, attached, await handle.result()
    except WorkflowFailureError as exc:
        cause: BaseException | None = exc.cause
        # the step's own error (an activity's ApplicationError) is under the ActivityError
        while cause is not None and cause.__cause__ is not None:
            cause = cause.__cause__
        raise FaceloopError(
            f"erasure workflow {handle.id} failed: {getattr(cause, 'message', cause)}; every step "
            "is safe to repeat, so fix the cause and run the same command again"
        ) from exc


def _print_report(report: ErasureReport) -> None:
    console.print(
        f"erasure of {report.kind} [bold]{report.target}[/bold] ({report.workflow_id}): "
        f"{report.removed} item(s) removed in {report.duration_s:.2f} s; audit entry "
        f"seq {report.audit_seq}"
    )
    table = Table("store", "removed", "ids", "notes")
    for s in report.stores:
        ids = ", ".join(s.ids[:3]) + (f" (+{len(s.ids) - 3})" if len(s.ids) > 3 else "")
        notes = [*s.notes, *(f"[red]NEEDS A PERSON:[/red] {i}" for i in s.incomplete)]
        table.add_row(s.store, str(s.removed), ids or "-", "\n".join(notes) or "-")
    console.print(table)
    if report.removed == 0 and not report.incomplete:
        console.print("nothing left to remove: every store was already clean")
