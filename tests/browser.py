"""Helpers for browser tests: a throwaway `streamlit run` server and headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Skip (locally) or fail (in CI) when Chromium or Playwright is missing."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -r requirements-dev.txt)")
    if missing:
        msg = "browser tests need " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(msg + " — CI must run them (.ci/run installs chromium)")
        pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(env: dict | None = None, timeout: float = 60.0, port: int | None = None,
                     secrets: Path | None = None, script: Path | None = None):
    """Start ``streamlit run app.py`` (or ``script``) on 127.0.0.1 (a free port unless given); yield
    its base URL.

    ``secrets`` replaces the secrets files (``--secrets.files``), e.g. one with an ``[auth]`` section.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script or ROOT / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    if secrets is not None:
        cmd += ["--secrets.files", str(secrets)]
    log = open(ROOT / "var" / f"streamlit-{port}.log", "w") if (ROOT / "var").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start (exit {proc.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def settle(page, timeout_ms: int = 30_000) -> None:
    """Wait until the script run has finished and nothing on the page is stale."""
    page.wait_for_selector("h1", timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 && !document.querySelector('[data-stale="true"]')""", timeout=timeout_ms)
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 && !document.querySelector('[data-stale="true"]')""", timeout=timeout_ms)


def errors_on(page) -> list[str]:
    """Texts of exceptions and error boxes shown on the page."""
    found = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [found.nth(i).inner_text() for i in range(found.count())]


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $JIXIAO_SCREENSHOT_DIR (``make screenshots``) or the test's tmp dir."""
    target = os.environ.get("JIXIAO_SCREENSHOT_DIR")
    path = Path(target) if target else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path



@contextmanager
def oidc_provider():
    """A mock OpenID Connect provider (PyPI ``oidc-provider-mock``) on 127.0.0.1; yield its base URL.

    Any client id and secret are accepted; the authorisation page asks for a subject (``sub``),
    whose claims can be set beforehand with :func:`set_oidc_claims`.
    """
    import threading

    import oidc_provider_mock
    import werkzeug.serving

    app = oidc_provider_mock.app(require_nonce=True)
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def set_oidc_claims(provider: str, sub: str, claims: dict) -> None:
    """Set the claims the mock provider issues for ``sub`` (e-mail, e-mail verified, name)."""
    import json

    req = urllib.request.Request(f"{provider}/users/{sub}", data=json.dumps(claims).encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204, r.status
