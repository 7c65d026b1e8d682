"""Remembered logins: a signed, expiring session token that survives reloads and new tabs.

A password login in the app is remembered in the browser by a cookie (:data:`COOKIE`) holding a
token signed with HMAC-SHA-256 under the deployment's session key. The token names the account
and the role, branch and manager it was issued for, when it was issued (``iat``) and when the
browser was last seen active (``seen``); nothing secret is in it. A new browser session (a reload,
a second tab, a shared link) resumes the login only when every check holds:

- the signature is right (no one without the key can make or change a token);
- it was issued less than :data:`MAX_HOURS` hours ago and the browser was seen less than
  :data:`data.auth.IDLE_MINUTES` minutes ago (the idle timeout holds across reloads: an active page
  re-issues the token with a new ``seen`` at most every :data:`REFRESH_SECONDS` seconds);
- the account still exists, is active and has the same role, branch and manager;
- the account has not logged out, idled out or been changed (password, role, deactivation, ...)
  since the token was issued: those are in the audit log, so a logout ends every remembered
  login of the account, in every browser, even if a browser kept its cookie.

The session key is ``session_secret`` in ``.streamlit/secrets.toml`` (shared by every server of a
deployment), else ``var/session.key``, made on first use with 32 random bytes and mode 0600.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path

from sqlalchemy import func, select

from data.auth import IDLE_MINUTES, Principal, Users
from data.db import T, read_tx

__all__ = ["COOKIE", "MAX_HOURS", "REFRESH_SECONDS", "issue", "read", "resume"]

COOKIE = "jixiao_session"
MAX_HOURS = 12                 # a remembered login lasts one working day at most
REFRESH_SECONDS = 60           # an active page re-issues its token (a new ``seen``) at most this often
KEY_FILE = Path(__file__).resolve().parents[1] / "var" / "session.key"
# Audit actions that end every remembered login of the account issued before them.
ENDING_ACTIONS = ("logout", "idle_timeout", "user_change")

_key_lock = threading.Lock()
_key: bytes | None = None


def _session_key() -> bytes:
    """The deployment's signing key (secrets.toml ``session_secret``, else ``var/session.key``)."""
    global _key
    with _key_lock:
        if _key is not None:
            return _key
        from data.settings import secret

        configured = secret("session_secret")
        if configured:
            if len(str(configured)) < 32:
                raise ValueError("session_secret in .streamlit/secrets.toml must be at least 32 characters")
            _key = str(configured).encode("utf-8")
            return _key
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        data = KEY_FILE.read_bytes()
        if len(data) < 32:
            raise ValueError(f"{KEY_FILE} holds {len(data)} bytes; delete it to make a new session key")
        _key = data
        return _key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(body: str) -> str:
    return _b64(hmac.new(_session_key(), body.encode("ascii"), hashlib.sha256).digest())


def issue(who: Principal, now: float, issued: float | None = None) -> str:
    """A signed token for ``who``, seen at ``now`` (Unix seconds), issued at ``issued`` (default ``now``).

    Returns
    -------
    str
        ``payload.signature``, both URL-safe base64 (a valid cookie value).
    """
    payload = {"v": 1, "u": who.username, "r": who.role, "b": who.branch, "m": who.manager_id,
               "iat": float(issued if issued is not None else now), "seen": float(now)}
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    return f"{body}.{_sign(body)}"


def read(token: str | None, now: float) -> tuple[dict | None, str]:
    """The token's payload when its signature and times hold, and why not otherwise.

    Returns
    -------
    tuple of (dict or None, str)
        The payload and ``"ok"``, or None and the reason: ``"absent"``, ``"malformed"``,
        ``"signature"``, ``"expired"`` (older than :data:`MAX_HOURS`) or ``"idle"``.
    """
    if not token:
        return None, "absent"
    if not isinstance(token, str) or len(token) > 2048 or token.count(".") != 1:
        return None, "malformed"
    body, sig = token.split(".")
    try:
        expected = _sign(body)
    except (UnicodeEncodeError, ValueError):
        return None, "malformed"
    if not hmac.compare_digest(expected, sig):
        return None, "signature"
    try:
        payload = json.loads(_unb64(body))
        iat, seen = float(payload["iat"]), float(payload["seen"])
        if payload.get("v") != 1 or not isinstance(payload.get("u"), str):
            return None, "malformed"
    except (ValueError, KeyError, TypeError):
        return None, "malformed"
    if not (iat <= seen <= now + 60) or now - iat > MAX_HOURS * 3600:
        return None, "expired"
    if now - seen > IDLE_MINUTES * 60:
        return None, "idle"
    return payload, "ok"


def _ended_since(users: Users, username: str, issued: float) -> bool:
    """True when the account logged out, idled out or was changed after ``issued`` (Unix seconds)."""
    a = T.audit_log
    since = dt.datetime.fromtimestamp(issued, dt.timezone.utc)
    with read_tx(users.engine) as conn:
        n = conn.execute(select(func.count()).select_from(a).where(
            a.c.target == f"user {username}", a.c.action.in_(ENDING_ACTIONS), a.c.at > since)).scalar()
    return bool(n)


def resume(users: Users, token: str | None, now: float) -> tuple[Principal | None, dict | None, str]:
    """The account a remembered login resumes, with the token's payload, or None and why not.

    Returns
    -------
    tuple of (Principal or None, dict or None, str)
        The reason is ``"ok"``, one of :func:`read`'s, ``"inactive"`` (the account is gone or
        deactivated), ``"changed"`` (its role, branch or manager changed) or ``"ended"`` (a logout,
        idle timeout or account change since the token was issued).
    """
    payload, why = read(token, now)
    if payload is None:
        return None, None, why
    who = users.principal(payload["u"])
    if who is None:
        return None, None, "inactive"
    if (who.role, who.branch, who.manager_id) != (payload.get("r"), payload.get("b"), payload.get("m")):
        return None, None, "changed"
    if _ended_since(users, who.username, payload["iat"]):
        return None, None, "ended"
    return who, payload, "ok"
