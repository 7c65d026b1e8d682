"""The scenario: every parameter of the calculation as one typed, validated, TOML-able object.

DOMAIN.md sections 8 and 9. Every key is optional (a missing key keeps its default); an unknown
key or an out-of-range value raises :class:`ValueError` naming the key, the value and the rule.

Beyond DOMAIN.md, the scenario carries ``pay_method`` (``"factor"`` or ``"points"``): which of
the two pay columns ranks managers. The default, ``"factor"``, ranks by pay as DOMAIN 6 says.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields

import tomli_w

__all__ = ["KpiDef", "Scenario", "LINES", "PAY_LINES", "ROLES", "PERSPECTIVES", "KPI_KINDS",
           "GRADES", "TIERS", "EDIT_ACTIONS", "default_kpis", "perspective_weights", "balanced_kpis", "PRESETS"]

LINES = ("asset", "liability", "intermediate")
PAY_LINES = ("asset", "liability", "intermediate", "risk")
ROLES = ("primary", "secondary", "support")
PERSPECTIVES = ("financial", "customer", "internal", "learning")
KPI_KINDS = ("ratio", "inverse", "deduction")
GRADES = ("senior", "advanced", "manager", "assistant")  # "unrated" below the last bound
TIERS = ("world_class", "blue_chip", "mid_size")          # "small" below the last bound
EDIT_ACTIONS = ("set", "derive", "add", "remove")         # coefficient edits (DOMAIN 11.1)
_CODE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class KpiDef:
    """One row of the scorecard.

    Attributes
    ----------
    code : str
        KPI code: a computed one (``deposit_avg``...) or one uploaded in the ``kpis`` sheet.
    perspective : str
        ``financial``, ``customer``, ``internal`` or ``learning``.
    weight : float
        Points at 100 % of target (ratio, inverse), or points per unit (deduction).
    kind : str
        ``ratio`` (higher is better), ``inverse`` (lower is better) or ``deduction``.
    cap : float
        Upper bound of actual/target (ratio) or target/actual (inverse); default 1.2.
    """

    code: str
    perspective: str = "financial"
    weight: float = 0.0
    kind: str = "ratio"
    cap: float = 1.2

    def validate(self, where: str) -> None:
        """Raise ValueError for a bad field; ``where`` names the row (``kpi[2]``)."""
        if not isinstance(self.code, str) or not _CODE.match(self.code):
            raise ValueError(f"{where}.code {self.code!r} must be a name of letters, digits and _")
        if self.perspective not in PERSPECTIVES:
            raise ValueError(f"{where}.perspective {self.perspective!r} must be one of {', '.join(PERSPECTIVES)}")
        if self.kind not in KPI_KINDS:
            raise ValueError(f"{where}.kind {self.kind!r} must be one of {', '.join(KPI_KINDS)}")
        _check_number(f"{where}.weight", self.weight, 0, 1000)
        _check_number(f"{where}.cap", self.cap, 0, 100, low_open=True)


def default_kpis() -> tuple[KpiDef, ...]:
    """The city commercial bank's 100-point plan (DOMAIN 6): liability 50, asset 30, other 20."""
    return (
        KpiDef("deposit_avg", "financial", 30, "ratio"),
        KpiDef("deposit_increase", "financial", 20, "ratio"),
        KpiDef("loan_avg", "financial", 15, "ratio"),
        KpiDef("asset_contribution", "financial", 15, "ratio"),
        KpiDef("intermediate_contribution", "financial", 10, "ratio"),
        KpiDef("new_customers", "customer", 5, "ratio"),
        KpiDef("cross_sell", "customer", 5, "ratio"),
        KpiDef("compliance_points", "internal", 5, "deduction"),
    )


def balanced_kpis() -> tuple[KpiDef, ...]:
    """The balanced-scorecard preset: financial 50 / customer 20 / internal 15 / learning 15.

    Deductions (compliance points) come on top of the 100 points, as in the default plan.
    """
    return (
        KpiDef("deposit_avg", "financial", 15, "ratio"),
        KpiDef("deposit_increase", "financial", 10, "ratio"),
        KpiDef("loan_avg", "financial", 10, "ratio"),
        KpiDef("asset_contribution", "financial", 10, "ratio"),
        KpiDef("intermediate_contribution", "financial", 5, "ratio"),
        KpiDef("new_customers", "customer", 8, "ratio"),
        KpiDef("cross_sell", "customer", 7, "ratio"),
        KpiDef("complaints", "customer", 5, "inverse"),
        KpiDef("npl_ratio", "internal", 15, "inverse"),
        KpiDef("compliance_points", "internal", 5, "deduction"),
        KpiDef("training_hours", "learning", 10, "ratio"),
        KpiDef("certifications", "learning", 5, "ratio"),
    )


PRESETS = {"default": default_kpis, "balanced": balanced_kpis}


def perspective_weights(kpis) -> dict:
    """Points each perspective gives at 100 % of target: the weights of its ratio and inverse KPIs
    (deductions only take points away), e.g. 90 / 10 / 0 / 0 for the default plan."""
    out = {p: 0.0 for p in PERSPECTIVES}
    for k in kpis:
        if k.kind != "deduction":
            out[k.perspective] += float(k.weight)
    return out


def edit_row(where: str, row) -> dict:
    """One coefficient edit (DOMAIN 11.1) as a scenario keeps it: a table with ``action``,
    ``customer_id``, ``manager_id`` and, where they apply, ``role`` and ``coefficient``.

    Raises
    ------
    ValueError
        Naming ``where`` (``edits[2]``) and the field, for a bad action, an empty id, a role not
        in ROLES, a coefficient outside (0, 1], ``set`` without a coefficient or ``add`` without
        a role.
    """
    if not isinstance(row, dict):
        raise ValueError(f"{where} must be a table")
    unknown = set(row) - {"action", "customer_id", "manager_id", "role", "coefficient"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} in {where}; allowed: action, customer_id, manager_id, "
                         "role, coefficient")
    action = row.get("action")
    if action not in EDIT_ACTIONS:
        raise ValueError(f"{where}.action {action!r} must be one of {', '.join(EDIT_ACTIONS)}")
    out = {"action": action}
    for key in ("customer_id", "manager_id"):
        v = row.get(key)
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{where}.{key} must be a non-empty id")
        out[key] = v.strip()
    role = row.get("role")
    if role is not None:
        if role not in ROLES:
            raise ValueError(f"{where}.role {role!r} must be one of {', '.join(ROLES)}")
        out["role"] = role
    elif action == "add":
        raise ValueError(f"{where}: add needs a role, one of {', '.join(ROLES)}")
    c = row.get("coefficient")
    if c is not None:
        _check_number(f"{where}.coefficient", c, 0, 1, low_open=True)
        out["coefficient"] = float(c)
    elif action == "set":
        raise ValueError(f"{where}: set needs a coefficient (0 < c <= 1)")
    return out


def _check_number(key: str, value, low=None, high=None, *, low_open: bool = False, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} = {value!r} must be a number")
    if integer and not float(value).is_integer():
        raise ValueError(f"{key} = {value!r} must be a whole number")
    if not math.isfinite(value):
        raise ValueError(f"{key} = {value!r} must be finite")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{key} = {value!r} must be {'>' if low_open else '>='} {low}")
    if high is not None and value > high:
        raise ValueError(f"{key} = {value!r} must be <= {high}")


# Field metadata: ``account_level`` marks the parameters the heavy (account-level) stage reads
# (calc.formulas' account terms); :meth:`Scenario.account_key` is made of exactly these, so a
# Base is rebuilt when one of them changes and reused when any other lever moves.
ACCOUNT_LEVEL = {"account_level": True}


def _d(metadata=None, **kw):
    return field(default_factory=lambda: dict(kw), metadata=metadata or {})


def _account(default):
    return field(default=default, metadata=ACCOUNT_LEVEL)


@dataclass
class Scenario:
    """All parameters of one calculation (DOMAIN 8). Units: money in yuan, rates per year.

    Use :meth:`validate` after editing fields; :meth:`from_dict` and :meth:`from_toml`
    validate for you.
    """

    name: str = "default"
    days: int = _account(90)
    day_basis: int = _account(360)
    tax_rate: float = _account(0.0672)
    capital_ratio: float = _account(0.105)
    cost_of_capital: float = _account(0.10)
    risk_weight_default: float = _account(1.0)
    stock_factor: float = 1.0
    floor_at_zero: bool = True
    pool: float = 1_000_000.0
    loyalty_years: float = 2.0
    acquisition_cost: float = 2_000.0
    pay_method: str = "factor"
    unit_cost: dict = _d(ACCOUNT_LEVEL, asset=300.0, liability=20.0, intermediate=10.0)
    cost_rate: dict = _d(ACCOUNT_LEVEL, asset=0.004, liability=0.002, intermediate=0.0)
    role_weight: dict = _d(primary=0.7, secondary=0.3, support=0.1)
    pay_factor: dict = _d(asset=0.06, liability=0.05, intermediate=0.10, risk=0.08)
    grades: dict = _d(senior=85.0, advanced=70.0, manager=50.0, assistant=20.0)
    tiers: dict = _d(world_class=30_000_000.0, blue_chip=10_000_000.0, mid_size=1_000_000.0)
    kpi: tuple = field(default_factory=default_kpis)
    # coefficient edits and reassignments (DOMAIN 11.1), applied in order after the heavy stage:
    # a tuple of tables (see :func:`edit_row`); they name one dataset's customers and managers
    edits: tuple = ()

    # ---- validation ---------------------------------------------------------------------
    _TABLES = {"unit_cost": LINES, "cost_rate": LINES, "role_weight": ROLES, "pay_factor": PAY_LINES,
               "grades": GRADES, "tiers": TIERS}

    def __post_init__(self) -> None:
        """Merge partial tables with their defaults, accept KPI rows as dicts, then validate."""
        for f in fields(self):
            if f.name in self._TABLES and isinstance(getattr(self, f.name), dict):
                setattr(self, f.name, {**f.default_factory(), **getattr(self, f.name)})
        if isinstance(self.kpi, list):
            self.kpi = tuple(KpiDef(**k) if isinstance(k, dict) else k for k in self.kpi)
        if isinstance(self.edits, list):
            self.edits = tuple(self.edits)
        self.validate()

    def validate(self) -> "Scenario":
        """Check every field; return ``self`` or raise ValueError naming the key and the rule."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name = {self.name!r} must be non-empty text")
        _check_number("days", self.days, 1, 366, integer=True)
        _check_number("day_basis", self.day_basis, 1, 366, integer=True)
        for key in ("tax_rate", "capital_ratio", "cost_of_capital", "stock_factor"):
            _check_number(key, getattr(self, key), 0, 1)
        _check_number("risk_weight_default", self.risk_weight_default, 0, 12.5)
        if not isinstance(self.floor_at_zero, bool):
            raise ValueError(f"floor_at_zero = {self.floor_at_zero!r} must be true or false")
        _check_number("pool", self.pool, 0)
        _check_number("loyalty_years", self.loyalty_years, 0, 100)
        _check_number("acquisition_cost", self.acquisition_cost, 0)
        if self.pay_method not in ("factor", "points"):
            raise ValueError(f"pay_method = {self.pay_method!r} must be 'factor' or 'points'")
        limits = {"unit_cost": (0, None), "cost_rate": (0, 1), "role_weight": (0, 1), "pay_factor": (0, 1),
                  "grades": (None, None), "tiers": (0, None)}
        for table, keys in self._TABLES.items():
            values = getattr(self, table)
            if not isinstance(values, dict):
                raise ValueError(f"[{table}] must be a table with keys {', '.join(keys)}")
            unknown = set(values) - set(keys)
            if unknown:
                raise ValueError(f"unknown key {sorted(unknown)[0]!r} in [{table}]; allowed: {', '.join(keys)}")
            missing = set(keys) - set(values)
            if missing:
                raise ValueError(f"[{table}] lacks {sorted(missing)[0]!r}")
            low, high = limits[table]
            for k in keys:
                _check_number(f"{table}.{k}", values[k], low, high)
        for table, keys in (("grades", GRADES), ("tiers", TIERS)):
            bounds = [getattr(self, table)[k] for k in keys]
            for (a, x), (b, y) in zip(zip(keys, bounds), zip(keys[1:], bounds[1:])):
                if x < y:
                    raise ValueError(f"{table}.{a} = {x:g} must be >= {table}.{b} = {y:g} (bounds go down)")
        if not isinstance(self.kpi, (tuple, list)):
            raise ValueError("kpi must be an array of tables ([[kpi]])")
        seen = set()
        for i, k in enumerate(self.kpi):
            if not isinstance(k, KpiDef):
                raise ValueError(f"kpi[{i}] must be a table")
            k.validate(f"kpi[{i}]")
            if k.code in seen:
                raise ValueError(f"kpi[{i}].code {k.code!r} appears twice")
            seen.add(k.code)
        if not isinstance(self.edits, tuple):
            raise ValueError("edits must be an array of tables ([[edits]])")
        self.edits = tuple(edit_row(f"edits[{i}]", e) for i, e in enumerate(self.edits))
        return self

    # ---- conversion ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain dict in the TOML layout of DOMAIN 9 (``kpi`` as a list of tables)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "kpi":
                out["kpi"] = [asdict(k) for k in v]
            elif f.name == "edits":
                if v:                    # no [[edits]] at all in a scenario without them
                    out["edits"] = [dict(e) for e in v]
            elif isinstance(v, dict):
                out[f.name] = dict(v)
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Scenario":
        """Build and validate a scenario; missing keys keep their defaults.

        Raises
        ------
        ValueError
            For an unknown key, a wrong type or an out-of-range value.
        """
        if not isinstance(data, dict):
            raise ValueError("a scenario must be a table of keys")
        s = cls()
        allowed = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in allowed:
                raise ValueError(f"unknown key {key!r} in scenario; allowed: {', '.join(sorted(allowed))}")
            if key == "kpi":
                if not isinstance(value, list):
                    raise ValueError("kpi must be an array of tables ([[kpi]])")
                rows = []
                kpi_keys = {"code", "perspective", "weight", "kind", "cap"}
                for i, row in enumerate(value):
                    if not isinstance(row, dict):
                        raise ValueError(f"kpi[{i}] must be a table")
                    unknown = set(row) - kpi_keys
                    if unknown:
                        raise ValueError(f"unknown key {sorted(unknown)[0]!r} in kpi[{i}]; allowed: {', '.join(sorted(kpi_keys))}")
                    if "code" not in row:
                        raise ValueError(f"kpi[{i}] needs a code")
                    rows.append(KpiDef(**row))
                s.kpi = tuple(rows)
            elif key == "edits":
                if not isinstance(value, (list, tuple)):
                    raise ValueError("edits must be an array of tables ([[edits]])")
                s.edits = tuple(edit_row(f"edits[{i}]", row) for i, row in enumerate(value))
            elif key in cls._TABLES:
                if not isinstance(value, dict):
                    raise ValueError(f"[{key}] must be a table with keys {', '.join(cls._TABLES[key])}")
                merged = dict(getattr(s, key))
                for k, v in value.items():
                    if k not in cls._TABLES[key]:
                        raise ValueError(f"unknown key {k!r} in [{key}]; allowed: {', '.join(cls._TABLES[key])}")
                    merged[k] = v
                setattr(s, key, merged)
            else:
                setattr(s, key, value)
        return s.validate()

    @classmethod
    def from_toml(cls, text: str) -> "Scenario":
        """Parse TOML text (DOMAIN 9). Raises ValueError with the line for a syntax error."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"scenario file is not valid TOML: {e}") from None
        return cls.from_dict(data)

    def to_toml(self) -> str:
        """The scenario as TOML text that :meth:`from_toml` reads back unchanged."""
        return tomli_w.dumps(self.to_dict())

    def replace(self, **changes) -> "Scenario":
        """A validated copy with some fields changed (tables are merged key by key)."""
        data = self.to_dict()
        for k, v in changes.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k] = {**data[k], **v}
            elif k == "kpi":
                data[k] = [x if isinstance(x, dict) else asdict(x) for x in v]
            elif k == "edits":
                data[k] = [dict(x) for x in v]
            else:
                data[k] = v
        return Scenario.from_dict(data)

    @classmethod
    def account_fields(cls) -> tuple[str, ...]:
        """The names of the account-level fields (declared with ``account_level`` metadata)."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("account_level"))

    def edits_key(self) -> tuple:
        """The coefficient edits as a hashable key (empty without edits)."""
        return tuple(tuple(sorted(e.items())) for e in self.edits)

    def account_key(self) -> tuple:
        """The parameters the heavy (account-level) stage depends on, as a hashable key: every
        field declared ``account_level`` (:meth:`account_fields`), by name; tables as sorted items."""
        return tuple((name, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                     for name in self.account_fields() for v in (getattr(self, name),))
