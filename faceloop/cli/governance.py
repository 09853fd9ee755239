"""Compliance commands: `faceloop escalations`, `approve`, `reject`,
`audit verify|export|checkpoint`."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from faceloop.cli.console import api as _api
from faceloop.cli.console import console, err, fail, group, run
from faceloop.errors import FaceloopError
from faceloop.models import Decision
from faceloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from faceloop.messages import PendingEscalation


ReviewerOpt = Annotated[
    str,
    typer.Option(
        envvar="FACELOOP_REVIEWER",
        help="who votes (default: $FACELOOP_REVIEWER, else the login name); recorded in the "
        "audit log as unverified. Only while no console user exists: after that, votes go "
        "through FACELOOP_API_URL as the token's user and this is ignored",
    ),
]
ReasonOpt = Annotated[str, typer.Option(help="why; recorded in the audit log")]
RoleOpt = Annotated[
    str | None, typer.Option(help="the role you vote as; required where the level names a role")
]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("escalations")(escalations)
    app.command("approve")(approve)
    app.command("reject")(reject)
    audit = group(
        "The hash-chained audit log: verify it, export it for a WORM store, sign checkpoints."
    )
    audit.command("verify")(audit_verify)
    audit.command("export")(audit_export)
    audit.command("checkpoint")(audit_checkpoint)
    app.add_typer(audit, name="audit")


def escalations(
    campaign: Annotated[str | None, typer.Option(help="only this campaign")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List escalated variants waiting for a reviewer: role, approvals, deadline, expiry."""
    from faceloop.workflows.client import list_escalations, reachable_client

    async def main() -> list[PendingEscalation]:
        return await list_escalations(await reachable_client(get_settings()), campaign)

    settings = get_settings()
    if settings.api_url:
        from faceloop.messages import PendingEscalation as Pending

        rows = _api(settings, "GET", "/api/v1/escalations")
        waiting = [Pending.model_validate(r) for r in rows]
        if campaign is not None:
            waiting = [p for p in waiting if p.campaign_id == campaign]
    else:
        waiting = run(main())
    if as_json:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in waiting], indent=2))
        return
    if not waiting:
        console.print("nothing waits for a review")
        return
    now = datetime.now(UTC)
    table = Table("flagged", "role", "approvals", "due in", "then")
    # the id is what reviewers copy into `faceloop approve`: never wrap it
    table.add_column("variant", no_wrap=True)
    for p in waiting:
        left = max((p.deadline - now).total_seconds(), 0)
        table.add_row(
            p.flagged,
            p.role,
            f"{len(p.approvals)}/{p.approvers_required}"
            + (f" ({', '.join(p.approvals)})" if p.approvals else ""),
            _duration(left),
            p.on_expiry,
            p.variant_id,
        )
    console.print(table)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _vote(variant: str, decision: Decision, reviewer: str, reason: str, role: str | None) -> None:
    from faceloop.console.users import UserStore
    from faceloop.messages import ReviewInput
    from faceloop.workflows.client import ReviewRefused, cast_review, reachable_client

    if not reason.strip():
        raise fail(FaceloopError("--reason is required: say why, it goes into the audit log"))
    settings = get_settings()
    if settings.api_url:
        # the console decides who votes: the token's user, as the role the level waits for
        verb = "approve" if decision == Decision.deploy else "reject"
        done = _api(settings, "POST", f"/api/v1/escalations/{variant}/{verb}", {"reason": reason})
        console.print(
            f"{escape(done['reviewer'])} ({escape(done['role'])}): {escape(done['answer'])}"
        )
        return
    # without the console nobody proves who votes: that is only allowed while no console
    # user exists (one operator); the worker refuses an unsigned vote after that anyway,
    # this says why before anything is sent
    try:
        with UserStore(settings.resolved_database_url) as users:
            n_users = len(users.users())
    except FaceloopError as exc:  # the catalog unreachable: its one-line error
        raise fail(exc) from exc
    if n_users:
        raise fail(
            FaceloopError(
                f"this catalog has {n_users} console user(s), so a vote counts only when the "
                "console signs it for a logged-in user: set FACELOOP_API_URL (the console, "
                "e.g. http://127.0.0.1:8780) and FACELOOP_API_TOKEN (`faceloop users token "
                "NAME`) and vote again, or vote in the console"
            ),
            1,
        )
    vote = ReviewInput(
        campaign_id="",  # filled in from the campaign that waits for this variant
        variant_id=variant,
        decision=decision,
        reviewer=reviewer or getpass.getuser(),
        reason=reason,
        role=role,
    )

    async def main() -> str:
        return await cast_review(await reachable_client(get_settings()), vote)

    try:
        said = asyncio.run(main())
    except ReviewRefused as exc:
        raise fail(exc, 1) from exc
    except FaceloopError as exc:
        raise fail(exc) from exc
    console.print(said)


def approve(
    variant: Annotated[str, typer.Argument(help="variant id (from `faceloop escalations`)")],
    reason: ReasonOpt = "",
    reviewer: ReviewerOpt = "",
    role: RoleOpt = None,
) -> None:
    """Approve an escalated variant; four-eyes rules wait for a second, different reviewer."""
    _vote(variant, Decision.deploy, reviewer, reason, role)


def reject(
    variant: Annotated[str, typer.Argument(help="variant id (from `faceloop escalations`)")],
    reason: ReasonOpt = "",
    reviewer: ReviewerOpt = "",
    role: RoleOpt = None,
) -> None:
    """Reject an escalated variant: it is blocked at once and never ships."""
    _vote(variant, Decision.block, reviewer, reason, role)


# --------------------------------------------------------------------------- audit


def audit_verify(
    file: Annotated[
        Path | None,
        typer.Option(help="check an exported JSON Lines file instead of the catalog"),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="signed checkpoint to check against (default: the newest in "
            "<home>/audit-checkpoints for this catalog)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check the hash chain, and the signed checkpoint: name every edited, removed or
    reordered entry, a rewritten chain, a cut tail or a deleted log. Exit 1 if any.

    With FACELOOP_API_URL set (and no --file), the console checks its catalog's hash chain
    as the token's user (compliance or admin); its checkpoints are checked only without it.
    """
    from faceloop.storage.catalog import Catalog
    from faceloop.storage.checkpoints import CheckpointRejected, Checkpoints, compare

    settings = get_settings()
    if settings.api_url and file is None:
        _verify_via_api(settings, checkpoint, as_json)
        return
    checkpoints = Checkpoints.from_settings(settings)
    try:
        anchor = (checkpoint, checkpoints.load(checkpoint)) if checkpoint else None
        if file is not None:
            problems, count, last, hashes = _verify_file(file)
            where = str(file)
            if anchor is not None:
                problems += compare(anchor[1].body, last[0], hashes.get(anchor[1].body.seq))
        else:
            with Catalog(settings.resolved_database_url) as catalog:
                problems = catalog.verify_audit()
                if anchor is None:
                    anchor = checkpoints.newest(catalog)
                if anchor is not None:
                    problems += checkpoints.check(catalog, anchor[1])
                last_seq, last_hash, count = catalog.audit_tip()
            last = (last_seq, last_hash if count else "")
            where = "catalog"
    except CheckpointRejected as exc:
        # a forged or edited anchor is a finding, like an edited entry
        err.print(f"[red]tampered:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    except FaceloopError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "source": where,
                    "entries": count,
                    "last_seq": last[0],
                    "last_hash": last[1],
                    "checkpoint": str(anchor[0]) if anchor else None,
                    "intact": not problems,
                    "problems": problems,
                },
                indent=2,
            )
        )
    else:
        if anchor is not None:
            body = anchor[1].body
            err.print(
                f"checked against {escape(str(anchor[0]))}: seq {body.seq}, signed by the "
                f"{escape(anchor[1].signer)} key"
                + (
                    f", timestamped by {escape(anchor[1].timestamp.tsa_url)}"
                    if anchor[1].timestamp
                    else ""
                )
            )
        elif file is None:
            err.print(
                "no signed checkpoint of this catalog yet: a cut tail or a deleted log cannot "
                "be told apart (`faceloop audit checkpoint` writes one)"
            )
        if problems:
            for line in problems:
                err.print(f"[red]tampered:[/red] {escape(str(line))}")
            err.print(
                f"{escape(str(len(problems)))} problem(s) in "
                f"{escape(str(count))} entries ({escape(str(where))})"
            )
        else:
            console.print(
                f"audit log intact: {count} entries ({where}), last seq {last[0]} "
                f"hash {last[1][:16]}"
            )
    if problems:
        raise typer.Exit(1)


def _verify_via_api(settings: Settings, checkpoint: Path | None, as_json: bool) -> None:
    """The console checks its catalog's chain, as the token's user (compliance or admin)."""
    if checkpoint is not None:
        # the console reads its own catalog; a checkpoint file here anchors nothing there
        raise fail(
            FaceloopError(
                "--checkpoint checks the catalog directly: unset FACELOOP_API_URL to use it "
                "(through the API the console checks the hash chain)"
            )
        )
    found = _api(settings, "GET", "/api/v1/audit/verify")
    problems: list[str] = found["problems"]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "source": str(settings.api_url),
                    "entries": found["entries"],
                    "last_seq": found["last_seq"],
                    "last_hash": found["last_hash"],
                    "checkpoint": None,
                    "intact": found["intact"],
                    "problems": problems,
                },
                indent=2,
            )
        )
    elif problems:
        for line in problems:
            err.print(f"[red]tampered:[/red] {escape(str(line))}")
        err.print(f"{len(problems)} problem(s) in {found['entries']} entries (console)")
    else:
        console.print(
            f"audit log intact: {found['entries']} entries (console), last seq "
            f"{found['last_seq']} hash {found['last_hash'][:16]}"
        )
    if problems:
        raise typer.Exit(1)


def audit_checkpoint(
    out: Annotated[
        Path | None,
        typer.Option(help="also write it here (a WORM store, another machine's folder)"),
    ] = None,
) -> None:
    """Sign the audit log's end (seq, hash, count) as a checkpoint in <home>/audit-checkpoints.

    Signed with the C2PA key (else a dedicated audit key) and, when FACELOOP_AUDIT_TSA_URL is
    set, timestamped (RFC 3161). Refused if the log no longer extends the newest checkpoint.
    """
    from faceloop.storage.catalog import Catalog
    from faceloop.storage.checkpoints import Checkpoints

    settings = get_settings()
    try:
        with Catalog(settings.resolved_database_url) as catalog:
            signed, path = Checkpoints.from_settings(settings).write(catalog, out)
    except FaceloopError as exc:
        raise fail(exc) from exc
    body = signed.body
    console.print(
        f"checkpoint of seq {body.seq} ({body.entries} entries, hash {body.hash[:16]}) signed "
        f"by the {escape(signed.signer)} key"
        + (" and timestamped" if signed.timestamp else "")
        + f": {escape(str(path))}"
        + (f" and {escape(str(out))}" if out else "")
    )


def _verify_file(path: Path) -> tuple[list[str], int, tuple[int, str], dict[int, str]]:
    from faceloop.storage.catalog import AuditEntry, ChainLink, verify_chain

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise fail(FaceloopError(f"cannot read {path}: {exc.strerror}")) from exc
    links: list[ChainLink] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            links.append(ChainLink.from_entry(AuditEntry.model_validate_json(line)))
        except ValueError as exc:
            raise fail(
                FaceloopError(f"{path}:{n}: not an audit entry written by `faceloop audit export`")
            ) from exc
    check = verify_chain(links, start_seq=links[0].seq if links else 1)
    return check.lines, check.count, check.last, {link.seq: link.hash for link in links}


def audit_export(
    out: Annotated[
        Path | None, typer.Option(help="JSON Lines file to write (default: standard output)")
    ] = None,
    from_seq: Annotated[
        int, typer.Option(min=1, help="first entry to export (for incremental shipping)")
    ] = 1,
) -> None:
    """Write the audit log as JSON Lines, one entry per line with its hashes, for a WORM store.

    The file verifies on its own: `faceloop audit verify --file FILE`. With FACELOOP_API_URL
    set, the console exports it as the token's user (compliance or admin).
    """
    from faceloop.storage.catalog import AuditEntry, Catalog

    settings = get_settings()
    if settings.api_url:
        text = _api(
            settings, "GET", "/api/v1/audit/export", params={"from_seq": from_seq}, raw=True
        )
        entries = [AuditEntry.model_validate_json(line) for line in text.splitlines() if line]
    else:
        try:
            with Catalog(settings.resolved_database_url) as catalog:
                entries = [e for e in catalog.audit_entries() if e.seq >= from_seq]
        except FaceloopError as exc:
            raise fail(exc) from exc
        text = "".join(e.model_dump_json() + "\n" for e in entries)
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    last = f", seq {entries[0].seq}..{entries[-1].seq}" if entries else ""
    err.print(
        f"wrote {escape(str(len(entries)))} audit entries to {escape(str(out))}{escape(str(last))}"
    )
