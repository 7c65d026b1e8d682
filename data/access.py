"""The one place results are read for a user: every query is filtered by role, branch and manager.

Pages and downloads for branch heads and managers read only through :class:`Access`. Admins and
analysts see every branch; a branch head sees their branch's published rows; a manager sees
their own. What is not allowed raises :class:`PermissionError`; it is never just hidden.
"""

from __future__ import annotations

import pandas as pd

from data.auth import Principal
from data.db import scoped
from data.store import Store, code_version

__all__ = ["Access", "Statement", "PAGE_ROLES", "ACTIONS"]

# Which roles may open which page (server side, in the shared frame).
PAGE_ROLES = {
    "page_overview": ("admin", "analyst", "branch_head", "manager"),
    "page_rankings": ("admin", "analyst", "branch_head", "manager"),
    "page_customers": ("admin", "analyst", "branch_head"),
    "page_scorecard": ("admin", "analyst", "branch_head", "manager"),
    "page_manager": ("admin", "analyst", "branch_head", "manager"),
    "page_history": ("admin", "analyst", "branch_head", "manager"),
    "page_coefficients": ("admin", "analyst"),
    "page_scenarios": ("admin", "analyst"),
    "page_upload": ("admin",),
    "page_admin": ("admin",),
}
# Which roles may do which action.
ACTIONS = {
    "whatif": ("admin", "analyst"),
    "upload": ("admin",),
    "publish": ("admin",),
    "save_scenario": ("admin", "analyst"),
    "manage_users": ("admin",),
    "read_audit": ("admin",),
}


class Access:
    """Reads for one principal.

    Parameters
    ----------
    store : Store
    who : Principal
    """

    def __init__(self, store: Store, who: Principal):
        self.store = store
        self.who = who

    # ------------------------------------------------------------------ permissions
    def can(self, action: str) -> bool:
        """True when the principal's role may do ``action`` (see :data:`ACTIONS`)."""
        return self.who.role in ACTIONS.get(action, ())

    def require(self, action: str) -> None:
        """Raise PermissionError unless :meth:`can`."""
        if not self.can(action):
            raise PermissionError(f"role {self.who.role} may not {action.replace('_', ' ')}")

    def may_open(self, page: str) -> bool:
        """True when the principal's role may open ``page``."""
        return self.who.role in PAGE_ROLES.get(page, ())

    def _scope(self) -> dict:
        if self.who.sees_everything:
            return {}
        if self.who.role == "branch_head":
            return {"branch": self.who.branch}
        if self.who.role == "manager":
            return {"manager_id": self.who.manager_id}
        raise PermissionError(f"unknown role {self.who.role!r}")

    # ------------------------------------------------------------------ published results
    def _wall(self):
        """The database's own limit for this principal (PostgreSQL row-level security)."""
        return scoped(**self._scope())

    def managers(self, publication_id: int) -> pd.DataFrame:
        """Frozen manager rows this principal may see."""
        with self._wall():
            return self.store.published_managers(publication_id, **self._scope())

    def customers(self, publication_id: int) -> pd.DataFrame:
        """Frozen customer rows: every branch, the principal's branch, or (a manager) none."""
        if self.who.role == "manager":
            raise PermissionError("a manager sees customers only in their own statement")
        scope = self._scope()
        with self._wall():
            return self.store.published_customers(publication_id, branch=scope.get("branch"))

    def history(self, manager_id: str | None = None) -> pd.DataFrame:
        """Frozen manager rows across periods, within the principal's scope."""
        scope = self._scope()
        if "manager_id" in scope:
            if manager_id not in (None, scope["manager_id"]):
                raise PermissionError("a manager sees only their own history")
            manager_id = scope["manager_id"]
        with self._wall():
            return self.store.history(manager_id=manager_id, branch=scope.get("branch"))

    def statement(self, publication_id: int, manager_id: str) -> "Statement":
        """One manager's published statement, if this principal may see that manager.

        Everything but the account detail is read from the rows frozen at publish
        (:meth:`data.store.Store.statement`), inside the principal's database scope: the summary
        (frozen pay, points pay, score, grade, ranks; ``pay_raw`` = the sum of the line pays),
        the pay lines, the customers credited (coefficient, source, attributed amounts) and the
        KPIs. The account detail (``accounts``, every formula term of the customers' accounts) is
        not frozen: it is recomputed from the frozen dataset and scenario when first read. A
        publication made before statements were frozen is recomputed whole, and says so in
        ``warnings``.

        Returns
        -------
        Statement
            A dict: ``summary``, ``lines``, ``customers``, ``kpi`` (DataFrames), ``accounts``
            (computed on first access), ``scenario``, ``period``, ``version``, ``frozen`` (bool)
            and ``warnings`` (list of str, to show with the statement).

        Raises
        ------
        PermissionError
            For a manager of another branch (branch head) or anyone else (manager).
        """
        rows = self.managers(publication_id)
        if manager_id not in set(rows["manager_id"]):
            raise PermissionError(f"manager {manager_id} is outside what {self.who.username} may see")
        with self._wall():
            chain = Statement(self.store, publication_id, self.store.statement(publication_id, manager_id))
        code = self.store.publication(publication_id)["code_version"]
        if chain["frozen"] and code != code_version():
            chain["warnings"].append(ACCOUNTS_RECOMPUTED)
        return chain


    def pay_change(self, publication_a: int, publication_b: int, manager_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Why one manager's pay changed between two publications (chain substitution, DOMAIN 11.2),
        from frozen rows only: the coefficients of each statement, the customers' frozen
        contribution per line and each published scenario's factors.

        Returns
        -------
        tuple of (DataFrame, DataFrame)
            As :func:`calc.whatif.chain`: the manager's row (``pay_a`` ... ``change``) and the
            per-line arithmetic.

        Raises
        ------
        PermissionError
            When the principal may see the manager in neither publication.
        """
        from calc.whatif import chain_states, frozen_state

        states = []
        seen = False
        for pid in (publication_a, publication_b):
            rows = self.managers(pid)
            here = rows[rows["manager_id"] == manager_id]
            if len(here):
                seen = True
                with self._wall():
                    st = self.store.statement(pid, manager_id)
                pairs = st["customers"].assign(manager_id=manager_id)
                scenario = st["scenario"]
            else:                                      # absent (or not visible) in this period: pay 0
                pairs = pd.DataFrame({"customer_id": [], "manager_id": [], "coefficient_used": []})
                scenario = self.store.load_scenario(int(self.store.publication(pid)["scenario_id"]))
            states.append((pid, pairs, scenario, here[["manager_id", "name", "branch"]]))
        if not seen:
            raise PermissionError(f"manager {manager_id} is outside what {self.who.username} may see")
        ids = set(states[0][1]["customer_id"]) | set(states[1][1]["customer_id"])
        frozen = [frozen_state(self.store.published_customer_lines(pid, ids), pairs, sc.pay_factor, sc.floor_at_zero,
                               managers) for pid, pairs, sc, managers in states]
        return chain_states(*frozen)


ACCOUNTS_RECOMPUTED = ("the account detail is recomputed with the current calculation code, which changed since "
                       "this publication: it may not add up to the frozen amounts / 账户明细按当前计算代码重新计算，"
                       "发布后计算代码已更新，可能与冻结金额不完全一致")


class Statement(dict):
    """A manager's statement (see :meth:`Access.statement`): its ``accounts`` are computed when
    first read (the heavy stage of the frozen dataset, cached per publication by the store)."""

    def __init__(self, store: Store, publication_id: int, parts: dict):
        super().__init__(parts)
        self._store = store
        self._publication_id = publication_id

    def __missing__(self, key):
        if key != "accounts":
            raise KeyError(key)
        _, base, _ = self._store.recompute(self._publication_id)
        customers = self["customers"]
        accounts = base.accounts_of(customers["customer_id"]).merge(
            customers[["customer_id", "coefficient_used"]], on="customer_id")
        accounts["attributed"] = accounts["coefficient_used"] * (accounts["contribution"] + accounts["risk"])
        self["accounts"] = accounts = accounts.reset_index(drop=True)
        return accounts
