"""The account formulas are defined once (calc.formulas) and two engines run that same text.

Proposed by the heavy-stage engineer: DuckDB (the app's engine) and polars (a second engine, as
Spark will be) must agree on every number of the heavy stage, so the SQL is portable and no
second copy of a formula is needed to check it.
"""

from __future__ import annotations

import numpy as np
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


@pytest.mark.parametrize("scenario", [Scenario(), Scenario(days=10, day_basis=365, risk_weight_default=1.5)])
def test_duckdb_and_polars_run_the_same_definition_to_the_same_numbers(scenario):
    frames = _bank()
    a = build_base(frames, scenario, engine="duckdb")
    b = build_base(frames, scenario, engine="polars")
    for col in a.customers.columns:
        x, y = a.customers[col].to_numpy(), b.customers[col].to_numpy()
        if x.dtype.kind == "f":
            assert np.allclose(x, y, rtol=1e-12, atol=1e-9), col
        elif x.dtype.kind in "iub":
            assert (x == y).all(), col
        else:
            assert a.customers[col].equals(b.customers[col]), col
    assert a.customers["products"].tolist() == [2, 3, 0]       # C3 holds nothing; a blank product counts as its line
    assert a.accounts_total == pytest.approx(b.accounts_total, rel=1e-12)
    for col in ("margin", "tax", "unit_cost", "balance_cost", "capital_charge", "contribution", "risk", "avg_balance"):
        assert np.allclose(a.accounts[col], b.accounts[col], rtol=1e-12, atol=1e-9), col
    assert (a.assignments[["cust_idx", "mgr_idx"]].to_numpy() == b.assignments[["cust_idx", "mgr_idx"]].to_numpy()).all()


def test_accounts_of_computes_the_same_terms_as_every_account():
    base = build_base(_bank(), Scenario())
    part = base.accounts_of(["C2"])
    assert list(part["account_id"]) == ["I1", "A2", "L2"]
    whole = build_base(_bank(), Scenario()).accounts
    assert np.allclose(part["contribution"].to_numpy(), whole.loc[part.index, "contribution"].to_numpy())
