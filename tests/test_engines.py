"""The account formulas are defined once (calc.formulas) and two engines run that same text.

Proposed by the heavy-stage engineer: DuckDB (the app's engine) and polars (a second engine, as
Spark will be) must agree on every number of the heavy stage, so the SQL is portable and no
second copy of a formula is needed to check it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calc.heavy import build_base
from calc.scenario import Scenario
from factories import make_frames

pytest.importorskip("polars")


def _bank():
    return make_frames(
        managers=[{"manager_id": "M1"}, {"manager_id": "M2"}],
        customers=[{"customer_id": "C1", "is_new": True}, {"customer_id": "C2"}, {"customer_id": "C3"}],
        accounts=[
            {"account_id": "L1", "customer_id": "C1", "line": "liability", "avg_balance": 1_000_000,
             "base_avg_balance": 600_000, "rate": 0.01, "ftp_rate": 0.03, "product": "deposit"},
            {"account_id": "A1", "customer_id": "C1", "line": "asset", "avg_balance": 2_000_000, "rate": 0.05,
             "ftp_rate": 0.03, "risk_weight": 0.5, "provision": 12_000, "recovery": 5_000,
             "classification": "doubtful", "product": "loan"},
            {"account_id": "I1", "customer_id": "C2", "line": "intermediate", "fee_income": 10_000},
            {"account_id": "A2", "customer_id": "C2", "line": "asset", "product": " "},
            {"account_id": "L2", "customer_id": "C2", "line": "liability"},
        ],
        assignments=[{"customer_id": "C1", "manager_id": "M1"}, {"customer_id": "C2", "manager_id": "M1"},
                     {"customer_id": "C2", "manager_id": "M2", "role": "secondary"}],
        daily=[{"account_id": "L1", "date": "2024-01-03", "balance": 100},
               {"account_id": "L1", "date": "2024-01-06", "balance": 200},
               {"account_id": "A2", "date": "2023-12-25", "balance": 50}],
    )


def assert_same_customers(a, b, atol: float = 1e-9) -> None:
    """Two Bases hold the same customer rows: floats to ``atol`` yuan (1e-12 relative), counts,
    flags and text exactly (also used by tests/test_spark.py)."""
    for col in a.customers.columns:
        x, y = a.customers[col].to_numpy(), b.customers[col].to_numpy()
        if x.dtype.kind == "f":
            assert np.allclose(x, y, rtol=1e-12, atol=atol), col
        elif x.dtype.kind in "iub":
            assert (x == y).all(), col
        else:
            assert a.customers[col].equals(b.customers[col]), col


@pytest.mark.parametrize("scenario", [Scenario(), Scenario(days=10, day_basis=365, risk_weight_default=1.5)])
def test_duckdb_and_polars_run_the_same_definition_to_the_same_numbers(scenario):
    frames = _bank()
    a = build_base(frames, scenario, engine="duckdb")
    b = build_base(frames, scenario, engine="polars")
    assert_same_customers(a, b)
    assert a.customers["products"].tolist() == [2, 3, 0]       # C3 holds nothing; a blank product counts as its line
    assert a.accounts_total == pytest.approx(b.accounts_total, rel=1e-12)
    for col in ("margin", "tax", "unit_cost", "balance_cost", "capital_charge", "contribution", "risk", "avg_balance"):
        assert np.allclose(a.accounts[col], b.accounts[col], rtol=1e-12, atol=1e-9), col
    assert (a.assignments[["cust_idx", "mgr_idx"]].to_numpy() == b.assignments[["cust_idx", "mgr_idx"]].to_numpy()).all()


def test_accounts_of_computes_the_same_terms_as_every_account():
    base = build_base(_bank(), Scenario())
    part = base.accounts_of(["C2"])                     # before .accounts: computed for these rows only
    assert list(part["account_id"]) == ["I1", "A2", "L2"]
    whole = base.accounts.loc[part.index]
    for col in ("margin", "tax", "unit_cost", "balance_cost", "capital_charge", "contribution", "risk", "avg_balance"):
        assert np.allclose(part[col].to_numpy(), whole[col].to_numpy(), rtol=1e-12, atol=1e-9), col


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
@pytest.mark.parametrize("scenario", [Scenario(), Scenario(days=10, day_basis=365, risk_weight_default=1.5)])
def test_the_spark_entry_point_gives_the_heavy_stage_numbers(engine, scenario):
    """customer_measures_sql and daily_average_sql (what a Spark run executes; the app adds the
    parts itself) give every customer measure build_base computes."""
    from calc.engines import run_queries
    from calc.formulas import MEASURES, customer_measures_sql, daily_average_sql

    frames = _bank()
    base = build_base(frames, scenario)
    daily = frames["daily_balances"]
    tables = {"accounts": frames["accounts"],
              "daily_balances": pd.DataFrame({"account_id": daily["account_id"],
                                              "day_no": daily["date"].to_numpy().astype("datetime64[D]").astype(np.int64),
                                              "balance": daily["balance"]})}
    out = run_queries({"daily_avg": daily_average_sql(scenario.days),
                       "measures": customer_measures_sql(scenario, daily="daily_avg")}, tables, engine)
    avg = out["daily_avg"].to_pandas().set_index("account_id")["avg_balance"]
    expected_avg = base.daily_avg.set_index("account_id")["avg_balance"]
    assert sorted(avg.index) == sorted(expected_avg.index) == ["A2", "L1"]
    assert np.allclose(avg.loc[expected_avg.index], expected_avg, rtol=1e-12, atol=0)
    got = out["measures"].to_pandas().set_index("customer_id")
    expected = base.customers.set_index("customer_id")
    assert sorted(got.index) == ["C1", "C2"]                  # C3 holds no account: no row
    assert (expected.loc["C3", list(MEASURES)] == 0).all()
    for m in MEASURES:
        x, y = got[m].to_numpy(dtype=float), expected.loc[got.index, m].to_numpy(dtype=float)
        assert np.allclose(x, y, rtol=1e-12, atol=0), m


def _big_bank(n_accounts=200_000, n_customers=2_000, chunk=None):
    """A bank whose accounts arrive in Arrow chunks of ``chunk`` rows (one chunk when None), as
    frames read back from a store's Parquet snapshot or a CSV reader do."""
    import pyarrow as pa

    from factories import make_frame

    rng = np.random.default_rng(7)
    cust_ids = [f"C{i:05d}" for i in range(n_customers)]
    template = make_frame("accounts", [{"account_id": "A", "customer_id": "C00000", "line": "asset"}])
    lines = np.array(["asset", "liability", "intermediate"])[rng.integers(0, 3, n_accounts)]
    columns = {
        "_row": np.arange(2, n_accounts + 2, dtype=np.int64),
        "account_id": [f"A{i:07d}" for i in range(n_accounts)],
        "customer_id": np.array(cust_ids)[rng.integers(0, n_customers, n_accounts)],
        "line": lines,
        "product": np.array(["loan", "deposit", "fund", ""])[rng.integers(0, 4, n_accounts)],
        "classification": np.array(["normal", "substandard", "loss"])[rng.integers(0, 3, n_accounts)],
    }
    for c in template.columns:
        if c not in columns and template[c].dtype.kind == "f":
            columns[c] = rng.lognormal(10, 3, n_accounts) * rng.choice([-1e-3, 1.0], n_accounts)
    columns["risk_weight"] = np.where(rng.random(n_accounts) < 0.5, np.nan, rng.random(n_accounts))
    columns["_error"] = np.zeros(n_accounts, dtype=bool)
    table = pa.table({c: columns[c] for c in template.columns})
    if chunk:
        table = pa.Table.from_batches(table.to_batches(max_chunksize=chunk))
    accounts = table.to_pandas()
    daily_ids = np.array(columns["account_id"])[rng.integers(0, 5_000, 40_000)]
    day = rng.integers(0, 120, 40_000)
    keep = ~pd.DataFrame({"a": daily_ids, "d": day}).duplicated().to_numpy()
    frames = make_frames(
        managers=[{"manager_id": f"M{i}"} for i in range(20)],
        customers=[{"customer_id": c, "is_new": i % 3 == 0} for i, c in enumerate(cust_ids)],
        accounts=[],
        assignments=[{"customer_id": c, "manager_id": f"M{i % 20}"} for i, c in enumerate(cust_ids)],
    )
    frames["accounts"] = accounts
    daily = pa.table({"_row": np.arange(2, int(keep.sum()) + 2, dtype=np.int64), "account_id": daily_ids[keep],
                      "date": pd.Timestamp("2024-01-01").to_datetime64() + day[keep].astype("timedelta64[D]"),
                      "balance": rng.lognormal(8, 3, int(keep.sum())), "_error": np.zeros(int(keep.sum()), dtype=bool)})
    frames["daily_balances"] = pa.Table.from_batches(daily.to_batches(max_chunksize=chunk)).to_pandas() if chunk \
        else daily.to_pandas()
    return frames


def test_the_heavy_stage_gives_the_same_bits_on_every_run_and_for_any_chunking():
    """A published result is verified by recomputing it from the stored frames (read back in other
    Arrow chunks than at upload) and comparing the hash: every float must come out bit for bit,
    whatever the engine's threads do (a parallel SUM combines partial sums in any order)."""
    runs = [build_base(_big_bank(chunk=chunk), Scenario()) for chunk in (None, 2_048, 2_048, 10_000)]
    first = runs[0]
    assert first.customers["accounts"].sum() == 200_000 and first.daily_avg is not None
    for other in runs[1:]:
        for col in first.customers.columns:
            x, y = first.customers[col], other.customers[col]
            if x.dtype.kind in "fiub":
                assert x.to_numpy().tobytes() == y.to_numpy().tobytes(), col
            else:
                assert x.equals(y), col
        assert first.daily_avg["avg_balance"].to_numpy().tobytes() == other.daily_avg["avg_balance"].to_numpy().tobytes()
        assert first.accounts_total == other.accounts_total


def test_customer_sums_refuse_an_engine_answer_that_lost_account_rows():
    """An engine that dropped a row (in order or out of order) must not give silently smaller sums."""
    import numpy as np
    import pyarrow as pa

    from calc.formulas import SUMMED
    from calc.heavy import _customer_sums

    def batch(positions):
        cols = {"_pos": pa.array(positions, pa.int64()), **{c: pa.array([1.0] * len(positions)) for c in SUMMED},
                "held": pa.array(["p"] * len(positions))}
        return pa.RecordBatch.from_pydict(cols)

    owners = np.array([0, 0, 1, 1], dtype=np.int64)
    sums, _, total = _customer_sums([batch([0, 1]), batch([2, 3])], owners, 2)
    assert list(sums[SUMMED[0]]) == [2.0, 2.0]                               # the whole answer adds up
    assert total == 16.0                                           # asset + liability + intermediate + risk
    sums, _, late_total = _customer_sums([batch([1, 0]), batch([3, 2])], owners, 2)
    assert list(sums[SUMMED[0]]) == [2.0, 2.0] and late_total == 16.0      # out of order, same sums
    for lost in ([batch([0, 1]), batch([2])], [batch([0, 1]), batch([3])], [batch([1, 0, 3])]):
        with pytest.raises(ValueError, match="account rows for 4 accounts"):
            _customer_sums(lost, owners, 2)
