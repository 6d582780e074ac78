"""Services act where they should: OT follows only young people who have not completed upper
secondary (its mandate: those with a right to upper secondary who are outside school and work),
and the dropout handoff to OT does not fire when a pupil completes."""

from __future__ import annotations

import numpy as np

from utenforsk.model import UtenforskModel


def _ot_months(model: UtenforskModel) -> tuple[int, int, int]:
    """(OT client-months, of them held by completers, people waiting for OT who completed) this month."""
    s = model.compiled.service_index["ot"]
    f = model.compiled.flags.index("completed_upper_secondary")
    slots = model.alive_slots()
    client = ((model.pop.clients[slots] >> s) & 1) == 1
    waiting = ((model.pop.waiting[slots] >> s) & 1) == 1
    referred = model.pop.ref_service[slots] == s
    done = ((model.pop.flags[slots] >> f) & 1) == 1
    return int(client.sum()), int((client & done).sum()), int(((waiting | referred) & done).sum())


def test_ot_does_not_follow_completers(baseline_path):
    """Before flags could be tested in needs and handoffs, 13% of OT's client-months were people
    who had completed upper secondary (referred on completing into unemployment). Now none."""
    m = UtenforskModel(baseline_path, seed=5, scale=0.005, burn_in_years=30, horizon_years=2)
    totals = np.zeros(3, np.int64)
    while m.running:
        m.step()
        totals += _ot_months(m)
    clients, completers, queued = totals
    assert clients > 500, "too few OT client-months for the test to mean anything"
    assert completers == 0 and queued == 0, (clients, completers, queued)


def test_agents_report_the_kernels_admission_probability(baseline_path):
    """A service agent's ``admit_p`` is the one the kernel applies (``Dyn.admit_p``): one array,
    not a copy kept beside it (the copy read 0 in the first month, where the kernel admits with 1)."""
    m = UtenforskModel(baseline_path, seed=2, scale=0.002, burn_in_years=0, horizon_years=1)
    for _ in range(2):
        m.step()
        agents = list(m.services)
        assert agents and all(a.admit_p == m.dyn.admit_p[a.s, a.m] for a in agents)
    assert m.service_areas.admit_p is m.dyn.admit_p


def test_covered_areas_computed_once_per_intervention(baseline_path, monkeypatch):
    """The service areas an intervention's service changes act in depend on its config and the
    areas alone: found once per model, not again every month."""
    calls = []
    real = UtenforskModel._covered_areas
    monkeypatch.setattr(UtenforskModel, "_covered_areas", lambda self, iv: calls.append(iv.name) or real(self, iv))
    m = UtenforskModel(baseline_path, seed=2, scale=0.002, burn_in_years=0, horizon_years=2,
                       interventions=["ot_reengagement", "kindergarten_quality"])
    m.run_model()
    assert sorted(calls) == sorted(iv.name for iv in m.interventions)
