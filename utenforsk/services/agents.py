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
from numba import njit

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
        #: the admission probabilities: the kernel's own array (Dyn.admit_p), not a copy of it
        self.admit_p = model.dyn.admit_p
        self.agents = [ServiceAgent(model, self, name, s, self.area_names[a], a)
                       for s, name in enumerate(c.services) for a in range(A)]

    def step(self) -> None:
        """Set every area's admission probability from last month's tallies: one compiled pass
        over all agents' cells (:func:`step_areas`; the same arithmetic, bit for bit, as one
        agent at a time; a numpy version cost ~0.16 ms a month with 2,499 agents)."""
        dyn, last = self.model.dyn, self.model.last_month
        n = len(self.kinds)
        if last is None:
            dyn.admit_p[:n] = 1.0
            return
        step_areas(n, last["muni_pop"], last["sv"], self.ages, self.follow_up, self.places_per_1000,
                   self.capacity, self.clients, self.waiting, self.admitted, dyn.admit_p)


@njit(cache=True, nogil=True)
def step_areas(n, pop, sv, ages, follow_up, places_per_1000, capacity, clients, waiting, admitted,
               admit_p):
    """Every service agent's month, for services ``0 .. n-1`` and every area ``a``:

    ``capacity = places per 1,000 x residents of the capacity ages (pop[a, age-year]) / 1000``;
    ``free = max(capacity - clients, 0)``; ``admit_p = clip(free / demand, 0, 1)``, or 1 if there
    is no demand but a free place, else 0. Demand is the queue (follow-up services) or last
    month's entry attempts (gates); ``waiting``/``admitted`` are the queue and admissions, or the
    refused and let-through attempts. ``admit_p`` is the kernel's ``Dyn.admit_p``."""
    for s in range(n):
        a0, a1 = ages[s, 0], ages[s, 1]
        for a in range(pop.shape[0]):
            residents = 0
            for y in range(a0, a1):
                residents += pop[a, y]
            cap = places_per_1000[s, a] * residents / 1000.0
            c = sv[s, a, SV_CLIENTS]
            if follow_up[s]:
                w, ad, demand = sv[s, a, SV_WAITING], sv[s, a, SV_ADMITTED], sv[s, a, SV_WAITING]
            else:
                tried, refused = sv[s, a, SV_GATE_TRIED], sv[s, a, SV_GATE_REFUSED]
                w, ad, demand = refused, tried - refused, tried
            free = max(cap - c, 0.0)
            if demand > 0:
                p = min(max(free / demand, 0.0), 1.0)
            else:
                p = 1.0 if free > 0 else 0.0
            capacity[s, a] = cap
            clients[s, a] = c
            waiting[s, a] = w
            admitted[s, a] = ad
            admit_p[s, a] = p


@njit(cache=True, nogil=True)
def sum_by_type(sv, pop, state, area_type, n_types):
    """A month's service and municipality tallies (``sv[service, area, field]``,
    ``pop[area, age-year]``, ``state[area, state]``) summed to the municipality types
    (``area_type[area]``): integer counts, exact in any order."""
    S, A, F = sv.shape
    osv = np.zeros((S, n_types, F), sv.dtype)
    opop = np.zeros((n_types, pop.shape[1]), pop.dtype)
    ost = np.zeros((n_types, state.shape[1]), state.dtype)
    for a in range(A):
        k = area_type[a]
        for s in range(S):
            for f in range(F):
                osv[s, k, f] += sv[s, a, f]
        for j in range(pop.shape[1]):
            opop[k, j] += pop[a, j]
        for j in range(state.shape[1]):
            ost[k, j] += state[a, j]
    return osv, opop, ost


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
