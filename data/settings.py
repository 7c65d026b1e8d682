"""Deployment settings read from the environment or ``.streamlit/secrets.toml``.

The environment wins over the file, so one deployment's file can be overridden per process
(a nightly job, a test). Nothing here imports a database or UI library: the command line's
``evaluate`` reads its engine from here without loading either.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

__all__ = ["SECRETS", "secret", "HEAVY_ENGINES", "heavy_engine"]

SECRETS = Path(__file__).resolve().parents[1] / ".streamlit" / "secrets.toml"
HEAVY_ENGINES = ("duckdb", "polars", "spark")


def _secrets() -> dict:
    """The top level of ``.streamlit/secrets.toml`` ({} without the file), read once per call.

    Raises
    ------
    ValueError
        When the file is not valid TOML.
    """
    if not SECRETS.is_file():
        return {}
    try:
        return tomllib.loads(SECRETS.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f".streamlit/secrets.toml is not valid TOML: {e}") from None


def secret(key: str):
    """The top-level ``key`` of ``.streamlit/secrets.toml`` (None when absent or without the file).

    Raises
    ------
    ValueError
        When the file is not valid TOML.
    """
    return _secrets().get(key)


def heavy_engine() -> str:
    """The configured engine of the heavy stage: ``JIXIAO_ENGINE``, else secrets.toml's
    ``engine``, else ``"duckdb"`` (the embedded default).

    Under ``"spark"`` the master URL is ``JIXIAO_SPARK_MASTER``, else secrets.toml's
    ``spark_master`` (copied into the environment, where :mod:`calc.spark` reads it), else
    ``local[2]``.

    Raises
    ------
    ValueError
        When the setting names another engine.
    """
    name = os.environ.get("JIXIAO_ENGINE")
    file = {} if name else _secrets()           # the file is read only when the environment is silent
    name = str(name or file.get("engine") or "duckdb").strip().lower()
    if name not in HEAVY_ENGINES:
        raise ValueError(f"engine {name!r} (JIXIAO_ENGINE or secrets.toml's engine) is not one of "
                         f"{', '.join(HEAVY_ENGINES)}")
    if name == "spark" and not os.environ.get("JIXIAO_SPARK_MASTER"):
        master = (file or _secrets()).get("spark_master")
        if master:
            os.environ["JIXIAO_SPARK_MASTER"] = str(master)
    return name
