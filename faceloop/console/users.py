"""Who may use the console: users, their API tokens and sessions, and who owns which campaign.

Kept in the catalog's database (tables `console_*` and `campaign_owners`, revision
0004), so PostgreSQL deployments get them in the same place as the audit log, and
every change to a user or a token is an audit entry.

A username is stored in the form the review board compares names in (`canonical`: NFKC,
case-folded, trimmed) and is unique in that form: it is the identity that the board's
"submitter cannot vote" and four-eyes rules compare, so `Alice` and `alice` must never be
two people.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from faceloop.console.security import (
    check_password_strength,
    hash_password,
    new_secret,
    new_token,
    password_needs_rehash,
    sha256_hex,
    verify_password,
)
from faceloop.errors import FaceloopError, InputError
from faceloop.storage.audit import AuditLog
from faceloop.storage.schema import (
    Row,
    campaign_owners,
    console_sessions,
    console_tokens,
    console_users,
    utc,
)

__all__ = ["Role", "SessionRow", "TokenRow", "User", "UserStore", "canonical_username"]


class Role(StrEnum):
    """What a console user may do (docs/console.md has the table)."""

    marketer = "marketer"  # submit briefs, see their own campaigns
    compliance = "compliance"  # decide escalations, erasure and consent, see every campaign
    admin = "admin"  # users, tokens, playbooks, and everything compliance sees


# names the review board writes as an actor itself: no person may be called that
RESERVED_NAMES = frozenset({"sla-timer", "system", "faceloop"})
_NAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,127}")


def canonical_username(name: str) -> str:
    from faceloop.workflows.review import canonical  # the board's own comparison

    return canonical(name)


class User(Row):
    user_id: str
    username: str
    role: Role
    review_roles: list[str]
    created_at: datetime
    disabled: bool = False

    def may_review_as(self, role: str) -> bool:
        return self.role in (Role.compliance, Role.admin) and canonical_username(role) in {
            canonical_username(r) for r in self.review_roles
        }


class TokenRow(Row):
    token_id: str
    user_id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class SessionRow(Row):
    user: User
    csrf_token: str
    expires_at: datetime


def _user(row: RowMapping) -> User:
    return User(
        user_id=row["user_id"],
        username=row["username"],
        role=Role(row["role"]),
        review_roles=list(row["review_roles"] or []),
        created_at=utc(row["created_at"]),
        disabled=row["disabled_at"] is not None,
    )


class UserStore(AuditLog):
    """Users, tokens, sessions and campaign owners on the catalog's database."""

    prepares_schema = True

    # ------------------------------------------------------------------ users

    def add_user(
        self,
        username: str,
        password: str,
        role: Role,
        review_roles: list[str] | None = None,
        actor: str = "cli",
    ) -> User:
        """A new user; InputError names each bad field. Compliance users vote as the
        playbook role `compliance` unless `review_roles` says otherwise."""
        name = canonical_username(username)
        problems = []
        if not _NAME.fullmatch(name):
            problems.append(
                "username: 1-128 of a-z 0-9 . _ @ + - (starting with a letter or digit)"
            )
        if name in RESERVED_NAMES:
            problems.append(f"username: {name!r} is reserved")
        problems += check_password_strength(password, name)
        if review_roles is None:
            review_roles = ["compliance"] if role in (Role.compliance, Role.admin) else []
        roles = sorted({canonical_username(r) for r in review_roles if r.strip()})
        if roles and role == Role.marketer:
            problems.append("review_roles: a marketer does not vote on escalations")
        if problems:
            raise InputError("new user", problems)
        user_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        try:
            with self._write() as conn:
                conn.execute(
                    console_users.insert().values(
                        user_id=user_id,
                        username=name,
                        role=role.value,
                        review_roles=roles,
                        password_hash=hash_password(password),
                        created_at=now,
                    )
                )
        except IntegrityError as exc:
            raise InputError("new user", [f"username: {name!r} exists already"]) from exc
        self.audit(
            None,
            "console.user_added",
            f"user:{name}",
            actor,
            {"user_id": user_id, "role": role.value, "review_roles": roles},
        )
        return User(user_id=user_id, username=name, role=role, review_roles=roles, created_at=now)

    def users(self) -> list[User]:
        with self._read() as conn:
            rows = conn.execute(select(console_users).order_by(console_users.c.username))
            return [_user(r) for r in rows.mappings()]

    def get(self, user_id: str) -> User | None:
        return self._one(console_users.c.user_id == user_id)

    def by_name(self, username: str) -> User | None:
        return self._one(console_users.c.username == canonical_username(username))

    def _one(self, where: Any) -> User | None:
        with self._read() as conn:
            row = conn.execute(select(console_users).where(where)).mappings().first()
        return None if row is None else _user(row)

    def authenticate(self, username: str, password: str) -> User | None:
        """The user whose password this is; None for a wrong password, an unknown or a
        disabled user (the same time is spent on each)."""
        name = canonical_username(username)
        with self._read() as conn:
            row = (
                conn.execute(select(console_users).where(console_users.c.username == name))
                .mappings()
                .first()
            )
        stored = None if row is None else row["password_hash"]
        if not verify_password(stored, password) or row is None:
            return None
        if row["disabled_at"] is not None:
            return None
        if password_needs_rehash(row["password_hash"]):
            self._set_hash(row["user_id"], hash_password(password))
        return _user(row)

    def set_password(self, username: str, password: str, actor: str = "cli") -> User:
        user = self._existing(username)
        problems = check_password_strength(password, user.username)
        if problems:
            raise InputError("password", problems)
        self._set_hash(user.user_id, hash_password(password))
        # a new password ends every session made with the old one
        with self._write() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.user_id == user.user_id))
        self.audit(None, "console.password_set", f"user:{user.username}", actor, {})
        return user

    def set_disabled(self, username: str, disabled: bool, actor: str = "cli") -> User:
        user = self._existing(username)
        with self._write() as conn:
            conn.execute(
                update(console_users)
                .where(console_users.c.user_id == user.user_id)
                .values(disabled_at=datetime.now(UTC) if disabled else None)
            )
            if disabled:
                conn.execute(
                    delete(console_sessions).where(console_sessions.c.user_id == user.user_id)
                )
        kind = "console.user_disabled" if disabled else "console.user_enabled"
        self.audit(None, kind, f"user:{user.username}", actor, {})
        return user.model_copy(update={"disabled": disabled})

    def _existing(self, username: str) -> User:
        user = self.by_name(username)
        if user is None:
            raise FaceloopError(
                f"no console user {canonical_username(username)!r}: `faceloop users list` "
                "shows them"
            )
        return user

    def _set_hash(self, user_id: str, digest: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(console_users)
                .where(console_users.c.user_id == user_id)
                .values(password_hash=digest)
            )

    # ------------------------------------------------------------------ API tokens

    def create_token(self, username: str, name: str, actor: str = "cli") -> tuple[str, TokenRow]:
        """A new API token for the user: the token (shown once, never stored) and its row."""
        user = self._existing(username)
        if not name.strip() or len(name) > 128:
            raise InputError("token", ["name: 1-128 characters, says what the token is for"])
        token = new_token()
        row = TokenRow(
            token_id=uuid.uuid4().hex[:16],
            user_id=user.user_id,
            name=name.strip(),
            created_at=datetime.now(UTC),
            last_used_at=None,
            revoked=False,
        )
        with self._write() as conn:
            conn.execute(
                console_tokens.insert().values(
                    token_id=row.token_id,
                    user_id=row.user_id,
                    name=row.name,
                    token_sha256=sha256_hex(token),
                    created_at=row.created_at,
                )
            )
        self.audit(
            None,
            "console.token_created",
            f"user:{user.username}",
            actor,
            {"token_id": row.token_id, "name": row.name},
        )
        return token, row

    def tokens(self, username: str) -> list[TokenRow]:
        user = self._existing(username)
        with self._read() as conn:
            rows = conn.execute(
                select(console_tokens)
                .where(console_tokens.c.user_id == user.user_id)
                .order_by(console_tokens.c.created_at)
            ).mappings()
            return [
                TokenRow(
                    token_id=r["token_id"],
                    user_id=r["user_id"],
                    name=r["name"],
                    created_at=utc(r["created_at"]),
                    last_used_at=utc(r["last_used_at"]) if r["last_used_at"] else None,
                    revoked=r["revoked_at"] is not None,
                )
                for r in rows
            ]

    def revoke_token(self, token_id: str, actor: str = "cli") -> None:
        with self._write() as conn:
            done = conn.execute(
                update(console_tokens)
                .where(console_tokens.c.token_id == token_id, console_tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        if done.rowcount == 0:
            raise FaceloopError(f"no active token {token_id!r}: `faceloop users tokens USER`")
        self.audit(None, "console.token_revoked", f"token:{token_id}", actor, {})

    def user_for_token(self, token: str) -> User | None:
        digest = sha256_hex(token)
        with self._read() as conn:
            row = (
                conn.execute(
                    select(console_tokens.c.token_id, console_tokens.c.user_id).where(
                        console_tokens.c.token_sha256 == digest,
                        console_tokens.c.revoked_at.is_(None),
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        user = self.get(row["user_id"])
        if user is None or user.disabled:
            return None
        with self._write() as conn:
            conn.execute(
                update(console_tokens)
                .where(console_tokens.c.token_id == row["token_id"])
                .values(last_used_at=datetime.now(UTC))
            )
        return user

    # ------------------------------------------------------------------ sessions

    def create_session(self, user: User, hours: float) -> tuple[str, str]:
        """A new session: (session id for the cookie, CSRF token for the forms)."""
        session_id, csrf = new_secret(), new_secret()
        now = datetime.now(UTC)
        with self._write() as conn:
            # expired sessions go when anyone logs in: no sweeper process needed
            conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            conn.execute(
                console_sessions.insert().values(
                    session_sha256=sha256_hex(session_id),
                    user_id=user.user_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=hours),
                )
            )
        return session_id, csrf

    def session(self, session_id: str) -> SessionRow | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    select(console_sessions).where(
                        console_sessions.c.session_sha256 == sha256_hex(session_id)
                    )
                )
                .mappings()
                .first()
            )
        if row is None or utc(row["expires_at"]) <= datetime.now(UTC):
            return None
        user = self.get(row["user_id"])
        if user is None or user.disabled:
            return None
        return SessionRow(user=user, csrf_token=row["csrf_token"], expires_at=row["expires_at"])

    def end_session(self, session_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                delete(console_sessions).where(
                    console_sessions.c.session_sha256 == sha256_hex(session_id)
                )
            )

    # ------------------------------------------------------------------ campaign owners

    def record_owner(self, campaign_id: str, user: User) -> None:
        with self._write() as conn:
            conn.execute(
                campaign_owners.insert().values(
                    campaign_id=campaign_id, user_id=user.user_id, submitted_at=datetime.now(UTC)
                )
            )

    def owner(self, campaign_id: str) -> str | None:
        """The user id that submitted the campaign through the console (None: the CLI)."""
        with self._read() as conn:
            return conn.execute(
                select(campaign_owners.c.user_id).where(
                    campaign_owners.c.campaign_id == campaign_id
                )
            ).scalar()

    def owned(self, user: User) -> set[str]:
        with self._read() as conn:
            return set(
                conn.execute(
                    select(campaign_owners.c.campaign_id).where(
                        campaign_owners.c.user_id == user.user_id
                    )
                ).scalars()
            )
