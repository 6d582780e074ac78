"""Services as agents: one per service and service area (MODEL.md: services are agents).

A *service area* is where a service's capacity, queue and tallies live: a municipality type (the
four of ``population.yaml``), or, with ``service_areas: municipality``, each real municipality of
configs/norway/data/municipalities.csv (issue 15), so a pilot in one municipality cannot move
another's queues.

The kernel does the per-person work (detection, waiting, admission draws, discharge, referrals)
and tallies what happened per area. Each month, before the kernel runs, every service agent reads
last month's tallies for its area and sets what the kernel applies next:

- ``follow_up`` services admit each waiting person with probability ``free / waiting``, where
  ``free = capacity - clients``, so admissions fill the free places in expectation;
- ``gate`` services (kindergarten places, NAV programme places) let an attempted entry through
  with probability ``free / attempts`` (attempts measured last month).

Capacity is ``places per 1,000 residents in capacity_ages x residents of the area / 1,000``, so it
scales with the area's simulated population and with ``scale``; places per 1,000 are the
service's, times the area's municipality type's ``capacity_factor``.

The agents' numbers live in the arrays of :class:`ServiceAreas` (one vectorised step a month for
all of them: 357 municipalities x services would cost seconds a run as a Python loop); a
:class:`ServiceAgent` is the Mesa agent of one (service, area), reading and setting its cell.
"""

from __future__ import annotations

import mesa
import numpy as np

from utenforsk.core.kernel import (SV_ADMITTED, SV_CLIENTS, SV_GATE_REFUSED, SV_GATE_TRIED,
                                   SV_WAITING)


def queue_flow(kind: str, row) -> tuple[int, int, int]:
    """(waiting, admitted, demand) of one service from its tally row.

    Follow-up services: the queue, admissions from it, and the queue as demand. Gate services:
    entry attempts refused, attempts let through, and all attempts as demand.
    """
    if kind == "follow_up":
        return int(row[SV_WAITING]), int(row[SV_ADMITTED]), int(row[SV_WAITING])
    tried, refused = int(row[SV_GATE_TRIED]), int(row[SV_GATE_REFUSED])
    return refused, tried - refused, tried


class ServiceAreas:
    """Every service in every service area, as arrays ``[service, area]``.

    ``area_type[a]`` is the municipality type of area ``a`` (its capacity and detection factors).
    """

    def __init__(self, model, area_type: np.ndarray, area_names: list[str]):
        cfg, c = model.config, model.compiled
        self.model = model
        self.area_type = np.asarray(area_type, np.int64)
        self.area_names = list(area_names)
        S, A = max(len(c.services), 1), len(self.area_type)
        types = list(cfg.municipalities.values())
        cap_f = np.array([types[k].capacity_factor.value for k in self.area_type])
        det_f = np.array([types[k].detection_factor.value for k in self.area_type])
        self.kinds = []
        self.follow_up = np.zeros(S, np.bool_)
        self.ages = np.zeros((S, 2), np.int64)
        self.places_per_1000 = np.zeros((S, A))
        for s, name in enumerate(c.services):
            spec = cfg.services[name]
            self.kinds.append(spec.kind)
            self.follow_up[s] = spec.kind == "follow_up"
            ages = spec.capacity_ages or spec.ages
            self.ages[s] = (int(round(ages[0])), int(round(ages[1])))
            self.places_per_1000[s] = spec.capacity.value * cap_f
            if spec.kind == "follow_up":
                model.dyn.detect_p[s] = np.minimum(1.0, spec.detection.value * det_f)
            model.dyn.quality[s] = spec.quality.value if spec.quality is not None else 1.0
        z = lambda dtype=np.float64: np.zeros((S, A), dtype)  # noqa: E731
        self.capacity, self.clients, self.waiting, self.admitted = z(), z(np.int64), z(np.int64), z(np.int64)
        self.admit_p = z()
        self.agents = [ServiceAgent(model, self, name, s, self.area_names[a], a)
                       for s, name in enumerate(c.services) for a in range(A)]

    def step(self) -> None:
        """Set every area's admission probability from last month's tallies (vectorised; the
        same arithmetic, bit for bit, as one agent at a time)."""
        dyn, last = self.model.dyn, self.model.last_month
        n = len(self.kinds)
        if last is None:
            dyn.admit_p[:n] = 1.0
            return
        pop = last["muni_pop"]  # [area, age-year]
        cum = np.zeros((pop.shape[0], pop.shape[1] + 1), np.int64)
        np.cumsum(pop, axis=1, out=cum[:, 1:])
        residents = (cum[:, self.ages[:n, 1]] - cum[:, self.ages[:n, 0]]).T  # [service, area]
        sv = last["sv"][:n]
        fu = self.follow_up[:n, None]
        tried, refused = sv[:, :, SV_GATE_TRIED], sv[:, :, SV_GATE_REFUSED]
        self.capacity[:n] = self.places_per_1000[:n] * residents / 1000.0
        self.clients[:n] = sv[:, :, SV_CLIENTS]
        self.waiting[:n] = np.where(fu, sv[:, :, SV_WAITING], refused)
        self.admitted[:n] = np.where(fu, sv[:, :, SV_ADMITTED], tried - refused)
        demand = np.where(fu, sv[:, :, SV_WAITING], tried)
        free = np.maximum(self.capacity[:n] - self.clients[:n], 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.minimum(np.maximum(free / demand, 0.0), 1.0)
        self.admit_p[:n] = np.where(demand > 0, p, np.where(free > 0, 1.0, 0.0))
        dyn.admit_p[:n] = self.admit_p[:n]


class ServiceAgent(mesa.Agent):
    """One service (e.g. ``nav``) in one service area (a municipality type such as
    ``central_large``, or a municipality such as ``3909 Larvik``): a view of its cell in
    :class:`ServiceAreas`."""

    def __init__(self, model, areas: ServiceAreas, service: str, s: int, municipality: str, m: int):
        super().__init__(model)
        self._areas = areas
        self.service, self.s = service, s
        self.municipality, self.m = municipality, m
        self.kind = areas.kinds[s]

    def _cell(name):  # noqa: N805
        def get(self):
            v = getattr(self._areas, name)[self.s, self.m]
            return v.item()

        def put(self, value):
            getattr(self._areas, name)[self.s, self.m] = value

        return property(get, put)

    places_per_1000 = _cell("places_per_1000")
    capacity = _cell("capacity")
    clients = _cell("clients")
    waiting = _cell("waiting")
    admitted = _cell("admitted")
    admit_p = _cell("admit_p")
    del _cell

    @property
    def capacity_ages(self) -> tuple[int, int]:
        a0, a1 = self._areas.ages[self.s]
        return int(a0), int(a1)

    def step(self) -> None:
        """Nothing of its own: :meth:`ServiceAreas.step` steps every agent at once."""
