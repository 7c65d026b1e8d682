"""The headless run's JSON document (DOMAIN.md section 10), built from a light-stage Result.

The document is written column by column (polars string expressions over whole columns): no
Python runs per manager or customer, so 200k customers take a fraction of a second. Its text is
the canonical frozen form a publication hashes: compact separators, keys sorted at every level,
non-ASCII kept (``ensure_ascii=False``), floats in the shortest form that reads back as the same
float64 (Python's ``repr``), NaN and infinities as ``null``. It is byte for byte what
``json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))`` gives for the same
document, so publications frozen before this module was columnar still verify.

A file is written in pieces of :data:`CHUNK_ROWS` customers (:func:`write_document`, which also
returns the SHA-256 taken while writing; :func:`document_sha256` only hashes): at 1M customers the
whole text is ~225 MB and building it in one piece took ~1.6 GB more memory, the pieces ~0.2 GB.
:func:`document_bytes` and :func:`document_text` give the same bytes in one piece.
"""

from __future__ import annotations

import hashlib
import json
from typing import BinaryIO, Iterator

import numpy as np
import pandas as pd
import polars as pl

from calc.columns import COLUMNS, CUSTOMER_DOCUMENT, LINE_TOTALS, MANAGER_PUBLISHED
from calc.light import Result

__all__ = ["to_json_dict", "document_text", "document_bytes", "document_parts", "write_document",
           "document_sha256", "float_text", "CHUNK_ROWS"]

# The document's shape: key -> (kind, column) or key -> nested shape. Kinds: "text" (a JSON
# string, or null), "float" (unrounded yuan or points; null when not finite), "int". The columns
# are those declared in calc.columns (MANAGER_PUBLISHED, CUSTOMER_DOCUMENT), with the line
# amounts and their total nested under "contribution" (DOMAIN 10).
_JSON_KIND = {"id": "text", "text": "text", "code": "text", "float": "float", "int": "int"}


def _shape(names) -> dict:
    shape: dict = {}
    for name in names:
        spec = (_JSON_KIND[COLUMNS[name].kind], name)
        if name in LINE_TOTALS:
            shape.setdefault("contribution", {})[name] = spec
        else:
            shape[name] = spec
    return shape


MANAGER_FIELDS: dict = _shape(MANAGER_PUBLISHED)
CUSTOMER_FIELDS: dict = _shape(CUSTOMER_DOCUMENT)
TOTAL_KEYS = ("contribution", "attributed", "unattributed", "pay", "points_pay")
# Rows (customers or managers) turned into text at a time when the document is streamed: ~25 MB
# of text and column buffers per piece, whatever the bank's size.
CHUNK_ROWS = 100_000

# Python's repr writes a float in scientific notation when its decimal exponent is below -4 or at
# least 16; polars' shortest form agrees digit for digit elsewhere (checked on 1.3M random
# floats), so only values outside that band are formatted by repr.
_REPR_SMALL = 1e-4
_REPR_LARGE = 1e16
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'   # json.dumps(ensure_ascii=False) escapes exactly these


def float_text(values) -> pl.Series:
    """Shortest round-trip text of float64 values, as Python's ``repr``; null when not finite.

    Parameters
    ----------
    values : array-like of float
        Any numeric column (ints are written as floats, ``5`` -> ``5.0``).

    Returns
    -------
    polars.Series
        String column, same length; ``float(text)`` gives back exactly the same float64.
    """
    x = np.asarray(values, dtype=np.float64)
    out = pl.Series("v", x, dtype=pl.Float64).cast(pl.String)
    finite = np.isfinite(x)
    a = np.abs(x)
    odd = np.flatnonzero(finite & (((a < _REPR_SMALL) & (a != 0)) | (a >= _REPR_LARGE)))
    if odd.size:   # rare in money data: tiny rounding residues, astronomically large sums
        out = out.scatter(odd, [repr(v) for v in x[odd].tolist()])
    if not finite.all():
        out = out.scatter(np.flatnonzero(~finite), None)
    return out


def _text_json(values) -> pl.Series:
    """JSON string literals (``ensure_ascii=False``) of a text column; null stays null."""
    s = values if isinstance(values, pl.Series) else pl.Series("v", values, dtype=pl.String)
    out = ('"' + s + '"').alias("v")
    odd = np.flatnonzero(s.str.contains(_NEEDS_ESCAPE).fill_null(False).to_numpy())
    if odd.size:   # quotes, backslashes or control characters: only these cells go through json
        out = out.scatter(odd, [json.dumps(v, ensure_ascii=False) for v in s.gather(odd).to_list()])
    return out


def _column(frame: pd.DataFrame, kind: str, col: str) -> pl.Series:
    """One value column of the document, as JSON text (null where the value is missing; an
    ``int`` column has none, :func:`_check_result`)."""
    if kind == "float":
        return float_text(frame[col].to_numpy(dtype=np.float64, na_value=np.nan))
    if kind == "int":
        return pl.Series("v", frame[col].to_numpy(dtype=np.int64)).cast(pl.String)
    if kind == "text":
        v = frame[col].reset_index(drop=True)
        try:
            s = pl.from_pandas(v)
        except (TypeError, ValueError, pl.exceptions.PolarsError):   # text mixed with other types
            s = pl.from_pandas(v.astype(object).where(v.isna(), v.astype(str)).astype("str"))
        return _text_json(s if s.dtype == pl.String else s.cast(pl.String))
    raise ValueError(f"unknown kind {kind!r} for column {col}")


def _object_expr(frame: pd.DataFrame, fields: dict, cols: dict) -> pl.Expr:
    """A concat_str expression building one JSON object per row, keys sorted."""
    parts: list = []
    for i, key in enumerate(sorted(fields)):
        parts.append(pl.lit(("{" if i == 0 else ",") + json.dumps(key, ensure_ascii=False) + ":"))
        spec = fields[key]
        if isinstance(spec, dict):
            parts.append(_object_expr(frame, spec, cols))
        else:
            name = f"_{len(cols)}"
            cols[name] = _column(frame, *spec).fill_null("null")
            parts.append(pl.col(name))
    parts.append(pl.lit("}"))
    return pl.concat_str(parts)


def _array_parts(frame: pd.DataFrame, fields: dict, chunk_rows: int) -> Iterator[bytes]:
    """``[obj,obj,...]`` (UTF-8) for every row of ``frame`` in its order, ``chunk_rows`` rows at a time."""
    if frame.empty:
        yield b"[]"
        return
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start:start + chunk_rows]
        cols: dict[str, pl.Series] = {}
        expr = _object_expr(part, fields, cols).str.join(",").cast(pl.Binary)
        yield b"[" if start == 0 else b","
        yield pl.DataFrame(cols).select(expr).item()
    yield b"]"


def _leaves(fields: dict):
    """The ``(kind, column)`` specs of a document shape, nested ones included."""
    for spec in fields.values():
        if isinstance(spec, dict):
            yield from _leaves(spec)
        else:
            yield spec


def _check_result(result: Result) -> None:
    """Raise ValueError when ``result`` lacks a column or total the document needs, or an
    integer column has a missing value (checked before any byte is made, not midway through a file)."""
    shapes = (("managers", result.managers, MANAGER_FIELDS), ("customers", result.customers, CUSTOMER_FIELDS))
    for name, frame, fields in shapes:
        missing = sorted({col for _, col in _leaves(fields)} - set(frame.columns))
        if missing:
            raise ValueError(f"result.{name} lacks column(s) {', '.join(missing)} needed by the DOMAIN 10 document")
    missing = [k for k in TOTAL_KEYS if k not in result.totals]
    if missing:
        raise ValueError(f"result.totals lacks {', '.join(missing)} needed by the DOMAIN 10 document")
    for _, frame, fields in shapes:
        for kind, col in _leaves(fields):
            if kind == "int" and frame[col].isna().any():
                raise ValueError(f"column {col} has missing values; the document needs an integer in every row")


def document_parts(result: Result, chunk_rows: int = CHUNK_ROWS, extra: dict | None = None) -> Iterator[bytes]:
    """The DOMAIN 10 document as consecutive pieces of its canonical UTF-8 text.

    ``b"".join(document_parts(result)) == document_bytes(result)`` whatever ``chunk_rows`` is;
    each piece holds at most ``chunk_rows`` customers or managers, so the memory it takes is
    bounded (~25 MB per 100,000 customers) however large the bank. The result is checked before
    the first piece is made: a ValueError leaves nothing half written.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.
    chunk_rows : int, optional
        Rows (customers or managers) per piece, at least 1 (default :data:`CHUNK_ROWS`).
    extra : dict, optional
        More top-level keys (e.g. DOMAIN 11.5's ``scaled``), plain JSON values written compact
        with sorted keys, each in its sorted place among the document's keys.

    Returns
    -------
    iterator of bytes
        The pieces, in order.

    Raises
    ------
    ValueError
        When a column the document needs is missing, an integer column has a missing value, or
        ``chunk_rows`` is below 1, or an ``extra`` key is one of the document's own.
    """
    if not isinstance(chunk_rows, (int, np.integer)) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    _check_result(result)
    extra = dict(extra or {})
    clash = set(extra) & {"customers", "managers", "totals"}
    if clash:
        raise ValueError(f"extra key {sorted(clash)[0]!r} is one of the document's own")
    return _parts(result, int(chunk_rows), extra)


def _parts(result: Result, chunk_rows: int, extra: dict | None = None) -> Iterator[bytes]:
    """The pieces of :func:`document_parts` (``result`` already checked)."""
    import json

    managers = result.managers.sort_values(["rank", "manager_id"], kind="stable")
    t = float_text([result.totals[k] for k in TOTAL_KEYS]).fill_null("null").to_list()
    totals = dict(zip(TOTAL_KEYS, t))
    totals_text = "{" + ",".join(f'"{k}":{totals[k]}' for k in sorted(totals)) + "}"
    own = {"customers": lambda: _array_parts(result.customers, CUSTOMER_FIELDS, chunk_rows),
           "managers": lambda: _array_parts(managers, MANAGER_FIELDS, chunk_rows),
           "totals": lambda: iter([totals_text.encode("utf-8")])}
    for k, v in (extra or {}).items():
        own[k] = lambda v=v: iter([json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                                              allow_nan=False).encode("utf-8")])
    for i, key in enumerate(sorted(own)):
        yield ("{" if i == 0 else ",").encode() + json.dumps(key).encode() + b":"
        yield from own[key]()
    yield b"}"


def write_document(result: Result, fh: BinaryIO | None, chunk_rows: int = CHUNK_ROWS,
                   extra: dict | None = None) -> tuple[int, str]:
    """Stream the DOMAIN 10 document's canonical UTF-8 text to ``fh``; return its size and SHA-256.

    The text is byte for byte :func:`document_bytes`, written piece by piece
    (:func:`document_parts`): memory stays bounded at any number of customers, and the hash a
    publication records is taken while writing, without a second pass over the text.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.
    fh : binary file-like or None
        Anything with ``write(bytes)`` (an open file, ``io.BytesIO``, a socket wrapper). None
        writes nothing: only the size and hash are computed.
    chunk_rows : int, optional
        Rows per piece (default :data:`CHUNK_ROWS`).

    Returns
    -------
    tuple of (int, str)
        Bytes written and the hex SHA-256 of exactly those bytes.

    Raises
    ------
    ValueError
        As :func:`document_parts`, before anything is written.
    """
    digest = hashlib.sha256()
    size = 0
    for part in document_parts(result, chunk_rows, extra):
        digest.update(part)
        size += len(part)
        if fh is not None:
            fh.write(part)
    return size, digest.hexdigest()


def document_sha256(result: Result) -> str:
    """Hex SHA-256 of the document's canonical UTF-8 text (what a publication records), streamed.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    str
        ``hashlib.sha256(document_bytes(result)).hexdigest()``, without holding the whole text.
    """
    return write_document(result, None)[1]


def document_text(result: Result) -> str:
    """The DOMAIN 10 document as canonical JSON text (the form a publication freezes and hashes).

    ``document_bytes(result).decode("utf-8")``; see :func:`document_bytes`.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    str
        The canonical text.
    """
    return document_bytes(result).decode("utf-8")


def document_bytes(result: Result) -> bytes:
    """The DOMAIN 10 document as canonical JSON, UTF-8 encoded, in one piece (for hashes and the store).

    For a file, :func:`write_document` writes the same bytes in bounded memory.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    bytes
        ``{"customers":[...],"managers":[...],"totals":{...}}``: compact separators, keys sorted at
        every level, non-ASCII kept, floats (yuan, points) unrounded in their shortest round-trip
        form, NaN and infinities as ``null``, ``rank``, ``branch_rank`` and ``relationship_level``
        as integers. Managers ordered by rank then manager_id, customers in Result order.

    Raises
    ------
    ValueError
        When a column the document needs is missing, or an integer column has a missing value.
    """
    return b"".join(document_parts(result))


def to_json_dict(result: Result) -> dict:
    """The DOMAIN 10 document as a dict: managers (by rank), customers, totals. Amounts: unrounded yuan.

    Parameters
    ----------
    result : Result
        From :func:`calc.light.evaluate`.

    Returns
    -------
    dict
        ``{"managers": [...], "customers": [...], "totals": {...}}``, JSON-serialisable; the
        parsed :func:`document_text`.
    """
    return json.loads(document_bytes(result))
