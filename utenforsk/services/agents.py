"""A service in one municipality type: capacity, queue, admissions (MODEL.md: services are agents).

The kernel does the per-person work (detection, waiting, admission draws, discharge, referrals)
and tallies what happened. Each month, before the kernel runs, every service agent reads last
month's tallies for its municipality and sets what the kernel applies next:

- ``follow_up`` services admit each waiting person with probability ``free / waiting``, where
  ``free = capacity - clients``, so admissions fill the free places in expectation;
- ``gate`` services (kindergarten places, NAV programme places) let an attempted entry through
  with probability ``free / attempts`` (attempts measured last month).

Capacity is ``places per 1,000 residents in capacity_ages x residents / 1,000``, so it scales with
the simulated population and with ``scale``.
"""

from __future__ import annotations

import mesa

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


class ServiceAgent(mesa.Agent):
    """One service (e.g. ``nav``) in one municipality type (e.g. ``central_large``)."""

    def __init__(self, model, service: str, s: int, municipality: str, m: int):
        super().__init__(model)
        spec = model.config.services[service]
        muni = model.config.municipalities[municipality]
        self.service, self.s = service, s
        self.municipality, self.m = municipality, m
        self.kind = spec.kind
        self.places_per_1000 = spec.capacity.value * muni.capacity_factor.value
        ages = spec.capacity_ages or spec.ages
        self.capacity_ages = (int(round(ages[0])), int(round(ages[1])))
        self.capacity = 0.0
        self.clients = 0
        self.waiting = 0
        self.admitted = 0
        self.admit_p = 0.0
        if spec.kind == "follow_up":
            model.dyn.detect_p[s, m] = min(1.0, spec.detection.value * muni.detection_factor.value)
        model.dyn.quality[s, m] = spec.quality.value if spec.quality is not None else 1.0

    def step(self) -> None:
        last = self.model.last_month
        if last is None:
            self.model.dyn.admit_p[self.s, self.m] = 1.0
            return
        a0, a1 = self.capacity_ages
        residents = last["muni_pop"][self.m, a0:a1].sum()
        self.capacity = self.places_per_1000 * residents / 1000.0
        row = last["sv"][self.s, self.m]
        self.clients = int(row[SV_CLIENTS])
        self.waiting, self.admitted, demand = queue_flow(self.kind, row)
        free = max(self.capacity - self.clients, 0.0)
        self.admit_p = min(max(free / demand, 0.0), 1.0) if demand > 0 else (1.0 if free > 0 else 0.0)
        self.model.dyn.admit_p[self.s, self.m] = self.admit_p
