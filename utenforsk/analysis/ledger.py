"""Who pays, who gains: the unit costs (configs/norway/costs.yaml) and the budget ledger by payer.

The mission's silo argument is about budgets: prevention is paid by municipalities while the
savings land on the state. The ledger gives each scenario's change in public spending per payer
(municipality, county, state), item and year, scenario minus baseline in the same replicate:
positive = the payer spends more, negative = it saves (or, for tax, collects more).

Every unit cost, transfer, tax and valuation parameter lives in ONE data file, validated here
(:class:`CostBook`); every item names its payer, its kind (service / transfer / tax) and the yearly
quantity it multiplies (recorded per task by
:func:`utenforsk.experiment.metrics.economic_quantities`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from utenforsk.config.params import Param, Strict

DEFAULT_COSTS = Path(__file__).resolve().parents[2] / "configs" / "norway" / "costs.yaml"
PAYERS = ("municipality", "county", "state")
UNASSIGNED = "unassigned"  # a programme the cost book does not name: charged visibly, to no one


def known_quantity(name: str) -> bool:
    """A yearly quantity the experiment records (utenforsk.experiment.metrics)."""
    from utenforsk.experiment.metrics import COSTED_ROLES, YEARLY

    fixed = {*YEARLY, *(f"person_years_{r}" for r in COSTED_ROLES),
             "person_years_kindergarten_1_2", "person_years_kindergarten_3_5"}
    return name in fixed or name.startswith(("client_years_", "age29_person_years_"))


class Item(Strict):
    kind: Literal["service", "transfer", "tax"]
    payer: Literal[PAYERS]  # type: ignore[valid-type]
    sector: str = Field(min_length=1)
    quantity: str = Field(min_length=1, description="yearly quantity the unit cost multiplies")
    service: str | None = Field(None, description="model service whose capacity this resource is")
    unit_cost: Param

    @field_validator("quantity")
    @classmethod
    def _known(cls, v: str) -> str:
        if not known_quantity(v):
            raise ValueError(f"unknown quantity {v!r}: use a yearly metric such as "
                             "employment_person_years_15_29, person_years_<role>, "
                             "person_years_kindergarten_1_2, client_years_<service> or age29_person_years_<role>")
        return v


class Production(Strict):
    value_per_employment_year: Param
    displacement_share: Param


class ValueAt30(Strict):
    include: bool = True
    production_loss_if_permanent: Param
    public_cost_if_permanent: Param
    persistence: dict[str, Param]


class ProgrammePayer(Strict):
    payer: Literal[PAYERS]  # type: ignore[valid-type]
    sector: str = Field(min_length=1)


class CostBook(Strict):
    """The validated cost file: see configs/norway/costs.yaml for the meaning of each part."""

    price_year: int
    tax_cost_factor: Param
    production: Production
    value_at_30: ValueAt30
    items: dict[str, Item]
    programmes: dict[str, ProgrammePayer] = Field(default_factory=dict)

    def payer_of(self, programme: str) -> tuple[str, str]:
        p = self.programmes.get(programme)
        return (p.payer, p.sector) if p else (UNASSIGNED, "programme")

    def params(self) -> dict[str, Param]:
        """Every number of the book by dotted path (for the docs table and for drawing)."""
        out = {"tax_cost_factor": self.tax_cost_factor}
        out.update({f"production.{k}": getattr(self.production, k) for k in Production.model_fields})
        out["value_at_30.production_loss_if_permanent"] = self.value_at_30.production_loss_if_permanent
        out["value_at_30.public_cost_if_permanent"] = self.value_at_30.public_cost_if_permanent
        out.update({f"value_at_30.persistence.{k}": v for k, v in self.value_at_30.persistence.items()})
        out.update({f"items.{k}.unit_cost": v.unit_cost for k, v in self.items.items()})
        return out

    def with_values(self, values: dict[str, float]) -> "CostBook":
        """A copy with some values replaced (dotted paths as in :meth:`params`)."""
        data = self.model_dump()
        for dotted, value in values.items():
            node = data
            *parents, last = dotted.split(".")
            for p in parents:
                node = node[p]
            node[last]["value"] = float(value)
        return CostBook.model_validate(data)


def load_costs(path: str | Path | None = None) -> CostBook:
    """Load and validate a cost file (default: configs/norway/costs.yaml); bad input raises one
    ConfigError naming the file, key, value and what is allowed."""
    from utenforsk.config.loader import compose, validate
    from utenforsk.errors import ConfigError

    path = Path(path) if path is not None else DEFAULT_COSTS
    if not path.is_file():
        raise ConfigError("cost file not found", file=str(path), allowed="a YAML file like configs/norway/costs.yaml")
    origin: dict = {}
    return validate(CostBook, compose(path, origin), str(path), origin)


def item_flows(deltas: dict[str, np.ndarray], programme_deltas: dict[str, np.ndarray], book: CostBook,
               paid_by_programme=frozenset()) -> list[tuple[str, str, str, str, np.ndarray]]:
    """Public spending change per ledger item: ``(item, kind, payer, sector, NOK[rep, year])``.

    ``deltas`` maps each quantity to its scenario-minus-baseline change (replicates x years);
    ``programme_deltas`` each programme's cost change. A missing quantity counts as no change.
    Items whose ``service`` is in ``paid_by_programme`` are charged 0 (the intervention that
    changes that service's capacity pays for it in its own cost block): in every year when it is a
    set of services, or in the years where the mask is true when it maps a service to a boolean
    array over the years (the years the capacity is bought; a follow-up after the programme pays
    the service at its unit cost again).
    """
    shape = next(iter(deltas.values())).shape
    rows = []
    for name, d in sorted(programme_deltas.items()):
        payer, sector = book.payer_of(name)
        rows.append((f"programme:{name}", "programme", payer, sector, d))
    for name, it in book.items.items():
        q = deltas.get(it.quantity, np.zeros(shape))
        if it.service is not None and it.service in paid_by_programme:
            bought = (paid_by_programme[it.service] if isinstance(paid_by_programme, dict)
                      else np.ones(shape[-1], dtype=bool))
            q = np.where(bought, 0.0, q)
        sign = -1.0 if it.kind == "tax" else 1.0
        rows.append((name, it.kind, it.payer, it.sector, sign * q * it.unit_cost.value))
    return rows


def ledger_table(flows_by_scenario: dict[str, list], years: list[int], df: np.ndarray) -> pd.DataFrame:
    """The ledger as rows ``scenario, payer, sector, item, kind, year, cost_change_nok,
    pv_cost_change_nok`` (means over replicates; pv = discounted to the policy start)."""
    rows = []
    for scenario, flows in flows_by_scenario.items():
        for item, kind, payer, sector, nok in flows:
            mean = np.asarray(nok, dtype=float).mean(axis=0) if len(nok) else np.zeros(len(years))
            for j, year in enumerate(years):
                rows.append((scenario, payer, sector, item, kind, year, float(mean[j]), float(mean[j] * df[j])))
    return pd.DataFrame(rows, columns=["scenario", "payer", "sector", "item", "kind", "year",
                                       "cost_change_nok", "pv_cost_change_nok"])


def payer_totals(ledger: pd.DataFrame) -> pd.DataFrame:
    """Present value of each payer's spending change per scenario (columns: payers)."""
    if ledger.empty:
        return pd.DataFrame()
    return ledger.pivot_table(index="scenario", columns="payer", values="pv_cost_change_nok",
                              aggfunc="sum", sort=False).fillna(0.0)


COST_TABLE_START = "<!-- COST TABLE START -->"
COST_TABLE_END = "<!-- COST TABLE END -->"


def cost_table_markdown(book: CostBook) -> str:
    """The cost book as a markdown table (docs/experiments.md holds it between the markers; a
    test checks it is current)."""
    def num(x: float) -> str:
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:g}"

    rows = ["| item | kind | payer (sector) | per | value | range | source |", "|---|---|---|---|---:|---|---|"]
    src = lambda p: " ".join(p.source.split()).replace("|", "\\|")  # noqa: E731
    for path, p in book.params().items():
        if path.startswith("items."):
            name = path.split(".")[1]
            it = book.items[name]
            rows.append(f"| `{name}` | {it.kind} | {it.payer} ({it.sector}) | `{it.quantity}` | "
                        f"{num(p.value)} | {num(p.range[0])}–{num(p.range[1])} | {src(p)} |")
        else:
            rows.append(f"| `{path}` | valuation | – | – | {num(p.value)} | "
                        f"{num(p.range[0])}–{num(p.range[1])} | {src(p)} |")
    payers = ", ".join(f"`{k}`: {v.payer} ({v.sector})" for k, v in book.programmes.items())
    return "\n".join(rows) + f"\n\nProgramme payers: {payers}; any other programme is `unassigned`.\n"
