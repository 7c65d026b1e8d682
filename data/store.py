"""The store: periods, dataset versions, scenarios, published results and the audit log.

Every write is one transaction (all or nothing) and writes its audit row in the same
transaction. Published results are frozen rows plus the exact DOMAIN 10 document; they are
only ever read back, never recomputed, so later changes to the calc code, the scenario or the
dataset cannot change what was paid out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Float, and_, func, select
from sqlalchemy.engine import Engine

from calc.output import to_json_dict
from calc.pipeline import run
from calc.scenario import Scenario
from data.db import ROOT, T, get_engine, migrate, read_tx, run_write
from data.schema import SHEETS, sheet_by_key

__all__ = ["Store", "ReconciliationError", "DatasetInfo", "code_version", "PERIOD_RE"]

PERIOD_RE = r"^\d{4}(Q[1-4]|M(0[1-9]|1[0-2])|H[12]|Y)$"


class ReconciliationError(ValueError):
    """What was stored differs from what was read; the upload was rolled back."""


@dataclass(frozen=True)
class DatasetInfo:
    """One stored dataset version."""

    id: int
    period: str
    version: int
    file_name: str
    sha256: str
    uploader: str
    created_at: dt.datetime
    row_counts: dict
    rejected_rows: int
    created: bool = True         # False when the upload was a byte-identical no-op

    @property
    def label(self) -> str:
        """``2026Q3 v2 (file.xlsx)``."""
        return f"{self.period} v{self.version} ({self.file_name})"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def code_version() -> str:
    """SHA-256 of the calculation code (``calc/*.py``), stored with every publication."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "calc").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _records(frame: pd.DataFrame, dataset_id: int, columns: list[str]) -> list[dict]:
    """Rows as dicts for executemany: Python scalars, ``None`` for every missing value."""
    values = {"excel_row": [int(x) for x in frame["_row"]]}
    for c in columns:
        col = frame[c]
        if pd.api.types.is_datetime64_any_dtype(col):
            arr = np.array([None if pd.isna(x) else x.date() for x in col], dtype=object)
        else:
            arr = col.to_numpy(dtype=object, na_value=None) if hasattr(col, "to_numpy") else np.asarray(col, dtype=object)
            arr = np.array([None if (x is None or (isinstance(x, float) and np.isnan(x))) else
                            (x.item() if isinstance(x, np.generic) else x) for x in arr], dtype=object)
        values[c] = arr.tolist()
    names = list(values)
    return [{"dataset_id": dataset_id, **dict(zip(names, row))} for row in zip(*values.values())]


def _check_period(period: str) -> str:
    import re

    period = (period or "").strip().upper()
    if not re.match(PERIOD_RE, period):
        raise ValueError(f"period {period!r} must look like 2026Q3, 2026M09, 2026H2 or 2026Y")
    return period


class Store:
    """Repository over one database (see :mod:`data.db` for the URL rules)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._recomputed: dict[int, tuple] = {}
        self._recomputed_lock = threading.Lock()

    @classmethod
    def open(cls, url: str | None = None) -> "Store":
        """Connect and apply pending migrations."""
        engine = get_engine(url)
        migrate(engine)
        return cls(engine)

    # ------------------------------------------------------------------ audit
    @staticmethod
    def _audit(conn, actor: str, action: str, target: str, before=None, after=None) -> None:
        conn.execute(T.audit_log.insert().values(     # cut to the columns' sizes: user text may be longer
            at=_now(), actor=str(actor)[:_AUDIT_ACTOR], action=action, target=str(target)[:_AUDIT_TARGET],
            before=None if before is None else json.dumps(before, ensure_ascii=False, default=str),
            after=None if after is None else json.dumps(after, ensure_ascii=False, default=str)))

    def audit(self, actor: str, action: str, target: str, before=None, after=None) -> None:
        """Append one audit row (its own transaction)."""
        run_write(self.engine, lambda conn: self._audit(conn, actor, action, target, before, after))

    def _frame(self, q) -> pd.DataFrame:
        """The rows of a select as a frame whose columns are the select's (also when empty)."""
        with read_tx(self.engine) as conn:
            return pd.DataFrame(conn.execute(q).mappings().all(), columns=list(q.selected_columns.keys()))

    def audit_log(self, limit: int = 500) -> pd.DataFrame:
        """The newest audit rows first."""
        q = select(T.audit_log).order_by(T.audit_log.c.id.desc()).limit(limit)
        return self._frame(q)

    # ------------------------------------------------------------------ datasets
    def save_dataset(self, period: str, file_name: str, sha256: str, frames: dict[str, pd.DataFrame],
                     uploader: str, quarantine: pd.DataFrame | None = None) -> DatasetInfo:
        """Store validated frames as the period's next version (or do nothing for identical bytes).

        Parameters
        ----------
        period : str
            ``2026Q3``, ``2026M09``, ``2026H2`` or ``2026Y``.
        file_name, sha256 : str
            What was uploaded (the hash of the uploaded bytes decides "identical").
        frames : dict of str to DataFrame
            Valid rows only (``_error`` all False).
        uploader : str
            User name, for the record and the audit log.
        quarantine : DataFrame, optional
            Rejected rows (:func:`data.quarantine.split_valid`), stored beside the dataset.

        Returns
        -------
        DatasetInfo
            ``created`` is False when the same bytes were already stored for this period.

        Raises
        ------
        ValueError
            Bad period, or frames holding rows with errors.
        ReconciliationError
            When the rows or per-branch balances read back differ from the frames.
        """
        period = _check_period(period)
        bad = [k for k, v in frames.items() if "_error" in v and bool(v["_error"].any())]
        if bad:
            raise ValueError(f"sheets {', '.join(bad)} hold rows with errors; split them off first")
        q = quarantine if quarantine is not None else pd.DataFrame(columns=["sheet", "row", "reason", "values"])
        counts = {s.key: int(len(frames.get(s.key, ()))) for s in SHEETS}

        def write(conn):
            existing = conn.execute(select(T.datasets).where(and_(T.datasets.c.period == period,
                                                                  T.datasets.c.sha256 == sha256))).mappings().first()
            if existing:
                return self._info(existing, created=False)
            version = (conn.execute(select(func.max(T.datasets.c.version)).where(T.datasets.c.period == period))
                       .scalar() or 0) + 1
            ds_id = conn.execute(T.datasets.insert().values(
                period=period, version=version, file_name=file_name, sha256=sha256, uploader=uploader,
                created_at=_now(), row_counts=json.dumps(counts), rejected_rows=len(q))).inserted_primary_key[0]
            for sheet in SHEETS:
                frame = frames.get(sheet.key)
                if frame is None or not len(frame):
                    continue
                records = _records(frame, ds_id, [c.key for c in sheet.columns])
                for start in range(0, len(records), 50_000):
                    conn.execute(T.ds[sheet.key].insert(), records[start:start + 50_000])
            if len(q):
                conn.execute(T.quarantine.insert(), [
                    {"dataset_id": ds_id, "seq": i, "sheet": str(r["sheet"]), "excel_row": int(r["row"]),
                     "reason": str(r["reason"]), "row_values": str(r["values"])} for i, r in enumerate(q.to_dict("records"))])
            self._reconcile(conn, ds_id, frames, counts, len(q))
            self._audit(conn, uploader, "upload", f"dataset {period} v{version}",
                        after={"file": file_name, "sha256": sha256, "rows": counts, "rejected": len(q)})
            row = conn.execute(select(T.datasets).where(T.datasets.c.id == ds_id)).mappings().one()
            return self._info(row)

        return run_write(self.engine, write)

    @staticmethod
    def _reconcile(conn, ds_id: int, frames: dict, counts: dict, rejected: int) -> None:
        for key, n in counts.items():
            stored = conn.execute(select(func.count()).select_from(T.ds[key]).where(T.ds[key].c.dataset_id == ds_id)).scalar()
            if stored != n:
                raise ReconciliationError(f"{key}: {n} rows read but {stored} stored; nothing was saved")
        stored_q = conn.execute(select(func.count()).select_from(T.quarantine)
                                .where(T.quarantine.c.dataset_id == ds_id)).scalar()
        if stored_q != rejected:
            raise ReconciliationError(f"quarantine: {rejected} rows rejected but {stored_q} stored; nothing was saved")
        acc, cus = T.ds["accounts"], T.ds["customers"]
        q = (select(cus.c.branch, acc.c.line, func.sum(acc.c.avg_balance))
             .select_from(acc.join(cus, and_(acc.c.dataset_id == cus.c.dataset_id, acc.c.customer_id == cus.c.customer_id)))
             .where(acc.c.dataset_id == ds_id).group_by(cus.c.branch, acc.c.line))
        db = {(b, ln): float(v or 0.0) for b, ln, v in conn.execute(q)}
        if "accounts" in frames and len(frames["accounts"]):
            a = frames["accounts"].merge(frames["customers"][["customer_id", "branch"]], on="customer_id")
            file_totals = a.groupby(["branch", "line"])["avg_balance"].sum()
            for (b, ln), v in file_totals.items():
                if abs(db.get((b, ln), 0.0) - float(v)) > 0.005:
                    raise ReconciliationError(f"branch {b} {ln} balances: {float(v):,.2f} in the file but "
                                              f"{db.get((b, ln), 0.0):,.2f} stored; nothing was saved")

    @staticmethod
    def _info(row, created: bool = True) -> DatasetInfo:
        return DatasetInfo(id=row["id"], period=row["period"], version=row["version"], file_name=row["file_name"],
                           sha256=row["sha256"], uploader=row["uploader"], created_at=row["created_at"],
                           row_counts=json.loads(row["row_counts"]), rejected_rows=row["rejected_rows"],
                           created=created)

    def datasets(self, period: str | None = None, limit: int | None = None) -> list[DatasetInfo]:
        """Stored dataset versions, newest period and version first (at most ``limit``)."""
        q = select(T.datasets).order_by(T.datasets.c.period.desc(), T.datasets.c.version.desc()).limit(limit)
        if period:
            q = q.where(T.datasets.c.period == period)
        with read_tx(self.engine) as conn:
            return [self._info(r) for r in conn.execute(q).mappings()]

    def dataset(self, dataset_id: int) -> DatasetInfo:
        """One dataset version by id."""
        with read_tx(self.engine) as conn:
            row = conn.execute(select(T.datasets).where(T.datasets.c.id == dataset_id)).mappings().first()
        if row is None:
            raise ValueError(f"no dataset with id {dataset_id}")
        return self._info(row)

    def latest_dataset(self, period: str | None = None) -> DatasetInfo | None:
        """The newest version of ``period`` (default: the latest period)."""
        found = self.datasets(period, limit=1)
        return found[0] if found else None

    def load_frames(self, dataset_id: int) -> dict[str, pd.DataFrame]:
        """A stored dataset as typed frames, exactly as :mod:`data.ingest` produced them."""
        frames = {}
        with read_tx(self.engine) as conn:
            for sheet in SHEETS:
                table = T.ds[sheet.key]
                rows = conn.execute(select(table).where(table.c.dataset_id == dataset_id)
                                    .order_by(table.c.excel_row)).mappings().all()
                frames[sheet.key] = _typed_frame(sheet.key, rows)
        return frames

    def load_quarantine(self, dataset_id: int) -> pd.DataFrame:
        """Rows rejected when the dataset was accepted with its valid rows only."""
        q = select(T.quarantine).where(T.quarantine.c.dataset_id == dataset_id).order_by(T.quarantine.c.seq)
        with read_tx(self.engine) as conn:
            rows = conn.execute(q).mappings().all()
        return pd.DataFrame([{"sheet": r["sheet"], "row": r["excel_row"], "reason": r["reason"],
                              "values": r["row_values"]} for r in rows], columns=["sheet", "row", "reason", "values"])

    # ------------------------------------------------------------------ scenarios
    def save_scenario(self, scenario: Scenario, author: str) -> tuple[int, int]:
        """Save under its name as a new version (or reuse the latest when unchanged).

        Returns
        -------
        tuple of (int, int)
            Scenario row id and version.
        """
        return run_write(self.engine, lambda conn: self._save_scenario(conn, scenario, author))

    def _save_scenario(self, conn, scenario: Scenario, author: str) -> tuple[int, int]:
        toml = scenario.to_toml()
        latest = conn.execute(select(T.scenarios).where(T.scenarios.c.name == scenario.name)
                              .order_by(T.scenarios.c.version.desc()).limit(1)).mappings().first()
        if latest and latest["toml"] == toml:
            return latest["id"], latest["version"]
        version = (latest["version"] if latest else 0) + 1
        sid = conn.execute(T.scenarios.insert().values(name=scenario.name, version=version, author=author,
                                                       created_at=_now(), toml=toml)).inserted_primary_key[0]
        self._audit(conn, author, "scenario_save", f"scenario {scenario.name} v{version}",
                    before={"toml": latest["toml"]} if latest else None, after={"toml": toml})
        return sid, version

    def scenarios(self) -> pd.DataFrame:
        """Every saved scenario version: id, name, version, author, created_at."""
        q = select(T.scenarios.c.id, T.scenarios.c.name, T.scenarios.c.version, T.scenarios.c.author,
                   T.scenarios.c.created_at).order_by(T.scenarios.c.name, T.scenarios.c.version.desc())
        return self._frame(q)

    def load_scenario(self, scenario_id: int) -> Scenario:
        """A saved scenario version by id."""
        with read_tx(self.engine) as conn:
            toml = conn.execute(select(T.scenarios.c.toml).where(T.scenarios.c.id == scenario_id)).scalar()
        if toml is None:
            raise ValueError(f"no scenario with id {scenario_id}")
        return Scenario.from_toml(toml)

    # ------------------------------------------------------------------ publishing
    def publish(self, period: str, scenario: Scenario, reason: str, user: str,
                dataset_id: int | None = None) -> dict:
        """Freeze the period's results under ``scenario`` as its next published version.

        Parameters
        ----------
        period : str
        scenario : Scenario
            Saved (as a new version when changed) and referenced by the publication.
        reason : str
            Required when the period was published before.
        user : str
        dataset_id : int, optional
            Default: the period's newest dataset version.

        Returns
        -------
        dict
            The publication row (without the JSON document).

        Raises
        ------
        ValueError
            No dataset for the period, or a re-publication without a reason.
        """
        period = _check_period(period)
        ds = self.dataset(dataset_id) if dataset_id else self.latest_dataset(period)
        if ds is None or ds.period != period:
            raise ValueError(f"no dataset stored for period {period}; load one first")
        frames = self.load_frames(ds.id)
        _, result = run(frames, scenario)
        text, result_hash = _result_text(result)
        code = code_version()
        inputs_hash = hashlib.sha256("\n".join([ds.sha256, scenario.to_toml(), code]).encode()).hexdigest()
        reason = (reason or "").strip()

        def write(conn):
            previous = conn.execute(select(func.max(T.publications.c.version))
                                    .where(T.publications.c.period == period)).scalar() or 0
            if previous and not reason:
                raise ValueError(f"period {period} was published before (v{previous}); re-publishing needs a reason")
            scenario_id, scenario_version = self._save_scenario(conn, scenario, user)
            pub_id = conn.execute(T.publications.insert().values(
                period=period, version=previous + 1, dataset_id=ds.id, scenario_id=scenario_id,
                reason=reason or "first publication", published_by=user, published_at=_now(), inputs_hash=inputs_hash,
                code_version=code, result_hash=result_hash, result_json=text)).inserted_primary_key[0]
            m = result.managers
            conn.execute(T.pub_managers.insert(), [
                {"publication_id": pub_id, "manager_id": r["manager_id"], "name": r["name"], "branch": r["branch"],
                 **{x: float(r[x]) for x in _float_columns(T.pub_managers)},
                 "grade": r["grade"], "rank": int(r["rank"]), "branch_rank": int(r["branch_rank"])}
                for r in m.to_dict("records")])
            c = result.customers
            if len(c):
                conn.execute(T.pub_customers.insert(), [
                    {"publication_id": pub_id, "customer_id": r["customer_id"], "name": r["name"], "branch": r["branch"],
                     **{x: float(r[x]) for x in _float_columns(T.pub_customers)},
                     "tier": r["tier"], "relationship_level": int(r["relationship_level"])}
                    for r in c.to_dict("records")])
            self._audit(conn, user, "publish", f"period {period} v{previous + 1}",
                        before={"version": previous} if previous else None,
                        after={"dataset": ds.label, "scenario": f"{scenario.name} v{scenario_version}",
                               "reason": reason or "first publication", "result_hash": result_hash,
                               "pay_total": result.totals["pay"]})
            return {"id": pub_id, "period": period, "version": previous + 1, "dataset_id": ds.id,
                    "scenario_id": scenario_id, "result_hash": result_hash, "inputs_hash": inputs_hash}

        return run_write(self.engine, write)

    def publications(self, period: str | None = None, publication_id: int | None = None) -> pd.DataFrame:
        """Published versions (newest first), without the documents; optionally one period or one id."""
        p = T.publications
        q = select(*[c for c in p.columns if c.name != "result_json"]).order_by(p.c.period.desc(), p.c.version.desc())
        if period:
            q = q.where(p.c.period == period)
        if publication_id is not None:
            q = q.where(p.c.id == publication_id)
        return self._frame(q)

    def published_document(self, publication_id: int) -> str:
        """The frozen DOMAIN 10 document of a publication, as stored (text)."""
        with read_tx(self.engine) as conn:
            doc = conn.execute(select(T.publications.c.result_json)
                               .where(T.publications.c.id == publication_id)).scalar()
        if doc is None:
            raise ValueError(f"no publication with id {publication_id}")
        return doc

    def published_managers(self, publication_id: int, branch: str | None = None,
                           manager_id: str | None = None) -> pd.DataFrame:
        """Frozen manager rows of a publication (optionally one branch or one manager)."""
        t = T.pub_managers
        q = select(t).where(t.c.publication_id == publication_id).order_by(t.c.rank, t.c.manager_id)
        if branch is not None:
            q = q.where(t.c.branch == branch)
        if manager_id is not None:
            q = q.where(t.c.manager_id == manager_id)
        return self._frame(q)

    def published_customers(self, publication_id: int, branch: str | None = None) -> pd.DataFrame:
        """Frozen customer rows of a publication (optionally one branch)."""
        t = T.pub_customers
        q = select(t).where(t.c.publication_id == publication_id).order_by(t.c.customer_id)
        if branch is not None:
            q = q.where(t.c.branch == branch)
        return self._frame(q)

    def latest_publications(self) -> pd.DataFrame:
        """The newest published version of every period, oldest period first."""
        pubs = self.publications()
        if pubs.empty:
            return pubs
        return pubs.sort_values(["period", "version"]).groupby("period").tail(1).reset_index(drop=True)

    def history(self, manager_id: str | None = None, branch: str | None = None) -> pd.DataFrame:
        """Frozen manager rows across the newest publication of every period."""
        latest = self.latest_publications()
        frames = []
        for _, p in latest.iterrows():
            rows = self.published_managers(int(p["id"]), branch=branch, manager_id=manager_id)
            rows.insert(0, "period", p["period"])
            frames.append(rows)
        if not frames:
            return pd.DataFrame(columns=["period", *[c.name for c in T.pub_managers.columns]])
        return pd.concat(frames, ignore_index=True)

    def publication(self, publication_id: int) -> pd.Series:
        """One publication's row (without the document)."""
        row = self.publications(publication_id=publication_id)
        if row.empty:
            raise ValueError(f"no publication with id {publication_id}")
        return row.iloc[0]

    def recompute(self, publication_id: int) -> tuple:
        """Both stages on a publication's frozen dataset and scenario versions.

        Publications never change, so the last few results are kept in memory; statements of
        published periods then cost no recomputation on each rerun.

        Returns
        -------
        tuple of (Scenario, Base, Result)
        """
        with self._recomputed_lock:
            hit = self._recomputed.get(publication_id)
        if hit is not None:
            return hit
        row = self.publication(publication_id)
        scenario = self.load_scenario(int(row["scenario_id"]))
        base, result = run(self.load_frames(int(row["dataset_id"])), scenario)
        with self._recomputed_lock:
            while len(self._recomputed) >= 4:
                self._recomputed.pop(next(iter(self._recomputed)))
            self._recomputed[publication_id] = (scenario, base, result)
        return scenario, base, result

    def verify(self, publication_id: int) -> dict:
        """Recompute a publication from its stored dataset and scenario and compare hashes.

        Returns
        -------
        dict
            ``stored_hash``, ``recomputed_hash``, ``same`` (bool), ``code_changed`` (bool).
        """
        row = self.publication(publication_id)
        _, _, result = self.recompute(publication_id)
        _, h = _result_text(result)
        return {"stored_hash": row["result_hash"], "recomputed_hash": h, "same": h == row["result_hash"],
                "code_changed": row["code_version"] != code_version()}


_AUDIT_ACTOR = T.audit_log.c.actor.type.length       # audit texts are cut to their columns' sizes
_AUDIT_TARGET = T.audit_log.c.target.type.length


def _result_text(result) -> tuple[str, str]:
    """The frozen text of a result (DOMAIN 10 JSON, canonical form) and its SHA-256: publish and
    verify must build it byte for byte the same way."""
    text = json.dumps(to_json_dict(result), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def _float_columns(table) -> list[str]:
    """The money and score columns of a frozen result table, in table order."""
    return [c.name for c in table.columns if isinstance(c.type, Float)]


_DTYPES = {"id": "str", "text": "str", "enum": "str"}


def _typed_frame(key: str, rows) -> pd.DataFrame:
    sheet = sheet_by_key(key)
    cols = [c.key for c in sheet.columns]
    df = pd.DataFrame([dict(r) for r in rows], columns=["excel_row", *cols, "dataset_id"])
    out = pd.DataFrame({"_row": df["excel_row"].astype("int64")})
    for c in sheet.columns:
        s = df[c.key]
        if c.kind in _DTYPES:
            out[c.key] = pd.array([None if pd.isna(v) else str(v) for v in s], dtype="str")
        elif c.kind == "bool":
            out[c.key] = s.fillna(False).astype(bool)
        elif c.kind == "date":
            out[c.key] = pd.to_datetime(s).astype("datetime64[ns]")
        else:
            out[c.key] = pd.to_numeric(s, errors="coerce").astype(float)
    out["_error"] = False
    return out


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of uploaded bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_path(path) -> str:
    """Hex SHA-256 of a file, or of a folder's files (names and contents, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.iterdir()):
            if f.is_file():
                h.update(f.name.encode())
                h.update(f.read_bytes())
    else:
        h.update(p.read_bytes())
    return h.hexdigest()
