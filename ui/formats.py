"""Number formats in one place: money, rates and shares, counts and ranks, and chart axes in 万 / 亿.

Money is yuan with thousands separators and 2 decimals (63,718.15); large figures may be shown in
万元 (ten thousand yuan) or 亿元 (hundred million); rates and shares are percentages with 2
decimals (1.52%); counts and ranks are integers. Chart axes carrying money put their ticks in 万 /
亿 (Chinese) or K / M / B (English), so an axis never reads 2M beside a table reading 2,000,000.00.
No Streamlit here: pages, charts and tests call these plain functions.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["money", "percent", "integer", "short_money", "nice_ticks", "money_ticks", "with_unit", "UNITS"]

# unit key -> (zh, en)
UNITS = {"yuan": ("元", "yuan"), "wan": ("万元", "10k yuan"), "people": ("人", "managers"),
         "customers": ("户", "customers"), "points": ("分", "points"), "percent": ("%", "%")}


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def money(x, digits: int = 2, unit: str = "yuan") -> str:
    """Yuan with separators: ``money(63718.149) == "63,718.15"``; ``unit="wan"`` divides by 10,000
    (``money(1234567, unit="wan") == "123.46"``); ``—`` for a missing or non-finite value."""
    if _missing(x):
        return "—"
    v = float(x) / (1e4 if unit == "wan" else 1.0)
    text = f"{v:,.{digits}f}"
    return "0.00" if text in ("-0.00", "-0") and digits == 2 else text


def percent(x, digits: int = 2) -> str:
    """A rate or share as a percentage: ``percent(0.0152) == "1.52%"``, ``percent(0.0029) == "0.29%"``."""
    if _missing(x):
        return "—"
    return f"{float(x) * 100:.{digits}f}%"


def integer(x) -> str:
    """A count or rank: ``integer(1.0) == "1"``, ``integer(12345) == "12,345"``."""
    if _missing(x):
        return "—"
    return f"{int(round(float(x))):,}"


def short_money(x, lang: str = "zh") -> str:
    """A large amount for an axis or a label: 1.2亿 / 35万 / 8,000 (zh), 120M / 350K / 8,000 (en)."""
    if _missing(x):
        return "—"
    v = float(x)
    a = abs(v)
    sizes = ((1e8, "亿"), (1e4, "万")) if lang == "zh" else ((1e9, "B"), (1e6, "M"), (1e3, "K"))
    for size, word in sizes:
        if a >= size:
            text = f"{v / size:,.{_digits(a / size)}f}"
            return (text.rstrip("0").rstrip(".") if "." in text else text) + word
    return f"{v:,.0f}"


def _digits(scaled: float) -> int:
    """Decimals that keep two or three significant digits (1.25 / 12.5 / 125)."""
    return 2 if scaled < 10 else 1 if scaled < 100 else 0


def nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """About ``n`` round tick values covering ``lo .. hi`` (steps of 1, 2, 2.5 or 5 x 10^k)."""
    lo, hi = float(min(lo, hi, 0.0)), float(max(lo, hi, 0.0))
    if hi == lo:
        return np.array([lo])
    raw = (hi - lo) / max(n - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    return np.arange(start, hi + step * 0.999, step)


def money_ticks(values, lang: str = "zh") -> dict:
    """Plotly axis ticks for money ``values``: round values labelled in 万 / 亿 (or K / M / B)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {}
    ticks = nice_ticks(float(v.min()), float(v.max()))
    return {"tickvals": ticks.tolist(), "ticktext": [short_money(x, lang) for x in ticks]}


def with_unit(label: str, unit: str, lang: str = "zh") -> str:
    """``营业收入（元）`` / ``Revenue (yuan)``: a label with its unit from :data:`UNITS`."""
    zh, en = UNITS[unit]
    return f"{label}（{zh}）" if lang == "zh" else f"{label} ({en})"
