"""Spark in the tests: skip locally without Java or pyspark, fail in CI (which installs both)."""

from __future__ import annotations

import os

import pytest


def require_spark() -> None:
    """Skip (locally) or fail (in CI) when Spark cannot run here."""
    from calc.spark import unavailable

    why = unavailable()
    if why:
        msg = f"Spark tests need {why}"
        if os.environ.get("CI"):
            pytest.fail(msg + " — CI must run them (.ci/run installs default-jre-headless, make test pyspark)")
        pytest.skip(msg)
