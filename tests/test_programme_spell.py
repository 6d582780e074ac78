"""A NAV programme keeps the duration out of work and education that the hazards read (issue 13).

`neet_spell_years` reads the person's months out of work and education (`out_spell`): register-
NEET months count, a NAV-programme month neither counts nor resets it, work and education end it.
The register NEET spell (`neet_spell`, the 12-consecutive-months flag) still ends in a programme.
Fixed seed, scale 0.01, 20-year burn-in: about 35 people in NAV programmes at the end, of
whom most entered from unemployment or inactivity after months out (so > 50% carry a positive
duration, exactly tested: the same seed gives the same population).
"""

from __future__ import annotations

import numpy as np

from utenforsk.model import UtenforskModel


def test_programme_months_keep_the_duration_the_hazards_read(baseline_path):
    m = UtenforskModel(baseline_path, seed=5, scale=0.01, burn_in_years=20, horizon_years=1,
                       start_year=2025)
    m.run_model()
    pop, states = m.pop, m.compiled.states
    alive = pop.alive == 1
    st = pop.state.astype(int)
    role = {i: m.config.states[n].role for i, n in enumerate(states)}
    neet = np.array([m.config.is_neet(n, "register") for n in states])
    prog = alive & np.isin(st, [i for i, r in role.items() if r == "nav_programme"])
    assert prog.sum() > 20, prog.sum()
    # in a programme the register spell is over, but the duration is kept for most entrants
    assert np.all(pop.neet_spell[prog] == 0)
    assert (pop.out_spell[prog] > 0).mean() > 0.5, (pop.out_spell[prog] > 0).mean()
    # NEET: the duration is at least the current register spell (it may include earlier months
    # before a programme); at work or in education it is 0
    in_neet = alive & neet[st]
    assert np.all(pop.out_spell[in_neet].astype(int) >= np.minimum(pop.neet_spell[in_neet], 255))
    other = alive & ~neet[st] & ~prog
    assert np.all(pop.out_spell[other] == 0)
    # and somebody in NEET now carries months from before a programme
    assert np.any(pop.out_spell[in_neet].astype(int) > pop.neet_spell[in_neet])
