"""Local accounts: argon2 password hashes, lockout, roles, user management, all audited.

Passwords are never stored, logged or audited; only argon2id hashes (salted, via argon2-cffi).
Five failed attempts lock an account for 15 minutes; the count is read and raised in one write
transaction (the ``users`` lock on PostgreSQL, the write lock on SQLite), so attempts made in
parallel cannot outrun it. Every login, failure, lockout, logout and user change is appended to
the audit log; a user name holding a control character (NUL included) is refused without a lookup
and audited too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select

from data.db import T, read_tx, run_write
from data.store import Store

__all__ = ["ROLES", "Principal", "AuthError", "Users", "MAX_FAILURES", "LOCK_MINUTES", "IDLE_MINUTES"]

ROLES = ("admin", "analyst", "branch_head", "manager")
MAX_FAILURES = 5
LOCK_MINUTES = 15
IDLE_MINUTES = 30
MIN_PASSWORD = 10
MAX_USERNAME = 100
_HASHER = PasswordHasher()
_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so they cost as much as real ones (made once)."""
    if not _DUMMY:
        _DUMMY.append(_HASHER.hash("timing-equaliser-not-a-password"))
    return _DUMMY[0]


@dataclass(frozen=True)
class Principal:
    """Who is asking: the user a session or a command acts for."""

    username: str
    role: str
    branch: str | None = None
    manager_id: str | None = None

    @property
    def sees_everything(self) -> bool:
        """Admins and analysts see every branch."""
        return self.role in ("admin", "analyst")


class AuthError(ValueError):
    """Login refused; ``reason`` is ``unknown``, ``password``, ``locked`` or ``inactive``."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is not None and t.tzinfo is None:      # SQLite returns naive datetimes
        return t.replace(tzinfo=dt.timezone.utc)
    return t


def _verified(claim) -> bool:
    """An ``email_verified`` claim that says yes (providers send a boolean or a string)."""
    return claim is True or (isinstance(claim, str) and claim.strip().lower() == "true")


def check_password_rule(password: str) -> None:
    """Raise ValueError when the password is too weak to store."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    if password.strip() != password:
        raise ValueError("the password must not start or end with spaces")


def _control_free(text: str) -> bool:
    """True when ``text`` holds no control character (NUL, tab, newline and the like)."""
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _check_user_fields(username: str, role: str, branch: str | None, manager_id: str | None) -> None:
    if not username or not username.strip() or len(username) > MAX_USERNAME:
        raise ValueError("a user name of 1 to 100 characters is required")
    if not _control_free(username):
        raise ValueError("a user name must not hold control characters (such as NUL or a line break)")
    for what, value, limit in (("branch", branch, T.users.c.branch.type.length),
                               ("manager id", manager_id, T.users.c.manager_id.type.length)):
        if value is not None and ("\x00" in str(value) or len(str(value)) > limit):
            raise ValueError(f"the {what} must be at most {limit} characters, without NUL characters")
    if role not in ROLES:
        raise ValueError(f"role {role!r} must be one of {', '.join(ROLES)}")
    if role == "branch_head" and not branch:
        raise ValueError("a branch head needs a branch")
    if role == "manager" and not manager_id:
        raise ValueError("a manager user needs a manager id")


def _locked(minutes: int) -> AuthError:
    return AuthError("locked", f"the account is locked after {MAX_FAILURES} failed attempts; "
                               f"try again in {minutes} min or ask an administrator")


def _principal(row) -> Principal:
    """The principal of a users row."""
    return Principal(row["username"], row["role"], row["branch"], row["manager_id"])


class Users:
    """User accounts in the store."""

    def __init__(self, store: Store):
        self.store = store
        self.engine = store.engine

    def count(self) -> int:
        """Number of accounts (active or not)."""
        with read_tx(self.engine) as conn:
            return conn.execute(select(func.count()).select_from(T.users)).scalar()

    def create(self, username: str, password: str | None, role: str, actor: str, branch: str | None = None,
               manager_id: str | None = None, oidc_subject: str | None = None, first_admin: bool = False) -> Principal:
        """Add an account.

        Parameters
        ----------
        username, role : str
        password : str or None
            At least 10 characters; None for a single-sign-on-only account, which needs an
            ``oidc_subject`` or an e-mail address as its user name.
        actor : str
            Who adds it (audited).
        branch, manager_id : str, optional
            Required for ``branch_head`` and ``manager``.
        first_admin : bool
            Only allowed while the store has no account (the one-time first-admin form).

        Raises
        ------
        ValueError
            Bad fields, a taken user name, or ``first_admin`` when accounts exist.
        """
        username = (username or "").strip()
        _check_user_fields(username, role, branch, manager_id)
        if oidc_subject and ("\x00" in oidc_subject or len(oidc_subject) > T.users.c.oidc_subject.type.length):
            raise ValueError("the single sign-on subject is too long or holds a NUL character")
        if password is not None:
            check_password_rule(password)
        elif not oidc_subject and "@" not in username:
            raise ValueError("a password is required, unless the account is for single sign-on only "
                             "(give its SSO subject, or use the e-mail address as the user name)")
        hashed = _HASHER.hash(password) if password is not None else None

        def write(conn):
            n = conn.execute(select(func.count()).select_from(T.users)).scalar()
            if first_admin and n:
                raise ValueError("the administrator already exists; log in instead")
            if conn.execute(select(T.users.c.id).where(T.users.c.username == username)).first():
                raise ValueError(f"user name {username!r} is taken")
            if oidc_subject and conn.execute(select(T.users.c.username).where(
                    T.users.c.oidc_subject == oidc_subject)).first():
                raise ValueError("the single sign-on subject is already bound to another user")
            conn.execute(T.users.insert().values(
                username=username, password_hash=hashed, role=role, branch=branch or None,
                manager_id=manager_id or None, oidc_subject=oidc_subject or None, active=True, failed_attempts=0,
                locked_until=None, created_at=_now()))
            self.store._audit(conn, actor, "user_add", f"user {username}",
                              after={"role": role, "branch": branch, "manager_id": manager_id,
                                     "sso": bool(oidc_subject), "first_admin": first_admin})

        run_write(self.engine, write, lock="users")     # two first-admin forms at once: one administrator
        return Principal(username, role, branch or None, manager_id or None)

    def authenticate(self, username: str, password: str) -> Principal:
        """Check a password; count failures, lock after 5, audit every outcome.

        The password is checked outside any transaction (argon2 takes tens of milliseconds); the
        outcome is then recorded in one write transaction that reads the account again, so the
        failure count and the lock are read and written atomically: of many wrong passwords sent
        at once exactly :data:`MAX_FAILURES` are counted, the account locks at the last of them,
        and the others (and a right password arriving meanwhile) are refused as locked.

        Raises
        ------
        AuthError
            With a message safe to show (it does not say whether the user exists).
        """
        username = (username or "").strip() if isinstance(username, str) or username is None else str(username)
        generic = "wrong user name or password"
        row = None
        # Names longer than any stored one, or holding a control character (a NUL cannot even be
        # sent to PostgreSQL), cannot exist: no lookup, the same refusal, audited.
        if len(username) <= MAX_USERNAME and _control_free(username):
            with read_tx(self.engine) as conn:
                row = conn.execute(select(T.users).where(T.users.c.username == username)).mappings().first()
        if row is None or not row["password_hash"]:
            try:
                _HASHER.verify(_dummy_hash(), password or "")   # same cost as a real check
            except (VerificationError, InvalidHashError):
                pass
            reason = "unknown" if _control_free(username) else "control character in user name"
            self.store.audit(username or "?", "login_failed", f"user {username}", after={"reason": reason})
            raise AuthError("unknown", generic)
        refusal = self._refusal(row, _now())
        if refusal is not None:
            self.store.audit(username, "login_failed", f"user {username}", after={"reason": refusal.reason})
            raise refusal
        try:
            _HASHER.verify(row["password_hash"], password or "")
            good = True
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            good = False

        def record(conn):
            """Read the account again under the write lock, then count, lock or log in."""
            now = _now()
            current = conn.execute(select(T.users).where(T.users.c.id == row["id"]).with_for_update()).mappings().one()
            refused = self._refusal(current, now)
            if refused is not None:             # locked or deactivated meanwhile (parallel attempts)
                self.store._audit(conn, username, "login_failed", f"user {username}", after={"reason": refused.reason})
                return refused
            if good and current["password_hash"] != row["password_hash"]:     # changed meanwhile
                self.store._audit(conn, username, "login_failed", f"user {username}",
                                  after={"reason": "password changed meanwhile"})
                return AuthError("password", generic)
            if good:
                conn.execute(T.users.update().where(T.users.c.id == row["id"]).values(
                    failed_attempts=0, locked_until=None))
                self.store._audit(conn, username, "login", f"user {username}")
                return _principal(current)
            failures = (current["failed_attempts"] or 0) + 1
            lock = failures >= MAX_FAILURES
            conn.execute(T.users.update().where(T.users.c.id == row["id"]).values(
                failed_attempts=0 if lock else failures,
                locked_until=now + dt.timedelta(minutes=LOCK_MINUTES) if lock else None))
            self.store._audit(conn, username, "login_failed", f"user {username}",
                              after={"reason": "password", "attempt": failures})
            if lock:
                self.store._audit(conn, username, "lockout", f"user {username}", after={"minutes": LOCK_MINUTES})
                return _locked(LOCK_MINUTES)
            return AuthError("password", generic)

        outcome = run_write(self.engine, record, lock="users")
        if isinstance(outcome, AuthError):
            raise outcome
        return outcome

    @staticmethod
    def _refusal(row, now: dt.datetime) -> AuthError | None:
        """Why an account may not log in now (locked, deactivated), or None."""
        locked_until = _aware(row["locked_until"])
        if locked_until and locked_until > now:
            minutes = max(1, int((locked_until - now).total_seconds() // 60) + 1)
            return _locked(minutes)
        if not row["active"]:
            return AuthError("inactive", "the account is deactivated")
        return None

    def principal_for_sso(self, claims: dict) -> Principal | None:
        """The active account a single-sign-on identity maps to, else None (audited either way).

        Parameters
        ----------
        claims : dict
            The ID-token claims Streamlit keeps in ``st.user``: ``sub``, ``email``,
            ``email_verified``, ``exp`` (seconds since the epoch).

        Notes
        -----
        The rule (docs/RULES.md, "Single sign-on"):

        1. An expired ID token (``exp`` in the past) opens no new session.
        2. An account whose ``oidc_subject`` equals ``sub`` is the match.
        3. Otherwise an account whose user name equals ``email`` (case-insensitive), only when the
           provider says ``email_verified`` is true (a missing claim or ``"false"`` is not), and
           only if that account is bound to no other subject; the subject is then bound to it, so a later e-mail change or reuse
           at the provider cannot move the identity to another account.
        4. Anything else (unknown, inactive, bound elsewhere) gets no access.
        """
        subject = str(claims.get("sub") or "").strip() or None
        email = str(claims.get("email") or "").strip() or None
        who = email or subject or "?"
        exp = claims.get("exp")
        reason = None
        row = None
        if isinstance(exp, (int, float)) and exp < _now().timestamp():
            reason = "expired token"
        elif not all(_control_free(x) and len(x) <= T.users.c.oidc_subject.type.length
                     for x in (subject or "", email or "")):
            reason = "control character or over-long identity"
        else:
            with read_tx(self.engine) as conn:
                if subject:
                    row = conn.execute(select(T.users).where(T.users.c.oidc_subject == subject)).mappings().first()
                if row is None and email:
                    row = conn.execute(select(T.users).where(
                        func.lower(T.users.c.username) == email.lower())).mappings().first()
                    if row is not None and not _verified(claims.get("email_verified")):
                        row, reason = None, "unverified e-mail"
                    elif row is not None and row["oidc_subject"] and row["oidc_subject"] != subject:
                        row, reason = None, "account bound to another identity"
            if row is None:
                reason = reason or "unknown identity"
            elif not row["active"]:
                reason = "inactive"
        if reason:
            self.store.audit(who, "login_failed", f"sso {who}", after={"reason": reason})
            return None
        bind = subject is not None and row["oidc_subject"] is None

        def ok(conn):
            if bind:
                conn.execute(T.users.update().where(T.users.c.id == row["id"]).values(oidc_subject=subject))
                self.store._audit(conn, row["username"], "user_change", f"user {row['username']}",
                                  before={"oidc_subject": None}, after={"oidc_subject": subject, "via": "sso"})
            self.store._audit(conn, row["username"], "login", f"user {row['username']}",
                              after={"via": "sso", "sub": subject})

        run_write(self.engine, ok, lock="users")
        return _principal(row)

    def principal(self, username: str) -> Principal | None:
        """The current role and branch of an active account (None when gone or deactivated)."""
        if not isinstance(username, str) or len(username) > MAX_USERNAME or not _control_free(username):
            return None
        with read_tx(self.engine) as conn:
            row = conn.execute(select(T.users).where(T.users.c.username == username)).mappings().first()
        if row is None or not row["active"]:
            return None
        return _principal(row)

    def logout(self, username: str, reason: str = "logout") -> None:
        """Audit the end of a session (``logout`` or ``idle_timeout``)."""
        self.store.audit(username, reason, f"user {username}")

    def list(self) -> pd.DataFrame:
        """Accounts without their hashes."""
        u = T.users
        q = select(u.c.username, u.c.role, u.c.branch, u.c.manager_id, u.c.oidc_subject, u.c.active,
                   u.c.failed_attempts, u.c.locked_until, u.c.created_at).order_by(u.c.username)
        return self.store._frame(q)

    def update(self, username: str, actor: str, **changes) -> None:
        """Change ``role``, ``branch``, ``manager_id``, ``active``, ``password`` or ``oidc_subject``; audited.

        ``unlock=True`` clears a lockout; a blank ``oidc_subject`` unbinds single sign-on.
        """
        allowed = {"role", "branch", "manager_id", "active", "password", "unlock", "oidc_subject"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)[0]!r}")

        if not isinstance(username, str) or not _control_free(username) or len(username) > MAX_USERNAME:
            raise ValueError(f"no user {username!r}")

        def write(conn):
            row = conn.execute(select(T.users).where(T.users.c.username == username)).mappings().first()
            if row is None:
                raise ValueError(f"no user {username!r}")
            fields = ("role", "branch", "manager_id", "active", "oidc_subject")
            before = {k: row[k] for k in fields}
            values = {k: v for k, v in changes.items() if k in fields}
            if "oidc_subject" in values:
                values["oidc_subject"] = (values["oidc_subject"] or "").strip() or None
                taken = values["oidc_subject"] and conn.execute(select(T.users.c.username).where(
                    (T.users.c.oidc_subject == values["oidc_subject"]) & (T.users.c.id != row["id"]))).first()
                if taken:
                    raise ValueError(f"the single sign-on subject is already bound to {taken[0]!r}")
            merged = {**before, **values}
            _check_user_fields(username, merged["role"], merged["branch"], merged["manager_id"])
            if row["role"] == "admin" and (merged["role"] != "admin" or not merged["active"]):
                admins = conn.execute(select(func.count()).select_from(T.users).where(
                    (T.users.c.role == "admin") & T.users.c.active)).scalar()
                if admins <= 1:
                    raise ValueError("the last active administrator cannot be demoted or deactivated")
            if "password" in changes:
                check_password_rule(changes["password"])
                values["password_hash"] = _HASHER.hash(changes["password"])
            if changes.get("unlock"):
                values.update(failed_attempts=0, locked_until=None)
            if values:
                conn.execute(T.users.update().where(T.users.c.id == row["id"]).values(**values))
            after = {k: v for k, v in values.items() if k != "password_hash"}
            if "password" in changes:
                after["password"] = "changed"
            self.store._audit(conn, actor, "user_change", f"user {username}", before=before, after=after)

        run_write(self.engine, write, lock="users")
