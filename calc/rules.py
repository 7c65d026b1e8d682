"""The coefficient rule of DOMAIN 5, one definition for every source of coefficients.

A coefficient given for a (customer, manager) pair must lie in (0, 1], and the given
coefficients of one customer must sum to at most 1 (what they leave is shared by the blank
ones). The upload validator (:mod:`data.ingest`) builds its report rows from
:func:`coefficient_problems`; the heavy stage checks the uploaded coefficients and the light stage
the coefficients set in the app (overrides) with :func:`check_coefficients`, so no path can
compute pay on a set that breaks the rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SUM_TOLERANCE", "CoefficientError", "coefficient_problems", "check_coefficients"]

# a sum of twentieths or thirds typed into a spreadsheet (1/3 + 1/3 + 1/3) is 1 to about 1e-16
SUM_TOLERANCE = 1e-9


class CoefficientError(ValueError):
    """Given coefficients that break DOMAIN 5's rule; ``problems`` is :func:`coefficient_problems`."""

    def __init__(self, message: str, problems: pd.DataFrame):
        super().__init__(message)
        self.problems = problems


def coefficient_problems(customer_ids, managers, coefficients) -> pd.DataFrame:
    """Every customer whose given coefficients break the rule.

    Parameters
    ----------
    customer_ids, managers : Series or array-like
        One per assignment row (a pandas text Series is the fastest form).
    coefficients : array-like of float
        The given coefficient per row, NaN where blank (derived from the role).

    Returns
    -------
    DataFrame
        One row per offending coefficient (``rule`` = ``range``: ``customer_id``, ``manager_id``,
        ``value``) and per customer whose sum is above 1 (``rule`` = ``sum``: ``customer_id``,
        ``value`` = the sum); ``sum`` first, each in order of first appearance. Empty when the set
        holds. Linear in the rows.
    """
    c = np.asarray(coefficients, dtype=float)
    ids = customer_ids.reset_index(drop=True) if isinstance(customer_ids, pd.Series) else pd.Series(customer_ids)
    given = ~np.isnan(c)
    codes, uniques = ids.factorize(use_na_sentinel=False)     # on Arrow text: no Python strings
    sums = np.bincount(codes, weights=np.where(given, c, 0.0), minlength=len(uniques)) if len(codes) \
        else np.zeros(0)
    over = np.flatnonzero(sums > 1.0 + SUM_TOLERANCE)
    bad = np.flatnonzero(given & ~((c > 0.0) & (c <= 1.0)))
    rows = [{"rule": "sum", "customer_id": uniques[k], "manager_id": None, "value": float(sums[k])} for k in over]
    mgr = managers.iloc[bad] if isinstance(managers, pd.Series) else np.asarray(managers, dtype=object)[bad]
    rows += [{"rule": "range", "customer_id": ids.iloc[i], "manager_id": m, "value": float(c[i])}
             for i, m in zip(bad, mgr)]
    return pd.DataFrame(rows, columns=["rule", "customer_id", "manager_id", "value"])


def check_coefficients(customer_ids, managers, coefficients, where: str = "") -> None:
    """Raise :class:`CoefficientError` naming the first customer (and its sum or coefficient)
    when the given coefficients break the rule; ``where`` says where they came from."""
    problems = coefficient_problems(customer_ids, managers, coefficients)
    if not len(problems):
        return
    p = problems.iloc[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    source = f"{where}: " if where else ""
    if p["rule"] == "sum":
        msg = (f"{source}customer {p['customer_id']}: given coefficients sum to {p['value']:g}, more than 1; "
               f"each customer's given coefficients must sum to at most 1{more}")
    else:
        msg = (f"{source}customer {p['customer_id']}, manager {p['manager_id']}: coefficient {p['value']:g} "
               f"is outside (0, 1]{more}")
    raise CoefficientError(msg, problems)
