"""How often the draw-first bounds let a person-month through: ``python -m benchmarks.bound_passes
[--scale X]``.

Takes the month kernel this checkout generates for the Norway baseline, adds a counter after each
bound test (into the programme tally ``t_prog``, which the baseline leaves at 0), and runs one
month on a copy of the population after a 30-year burn-in: the share of person-months alive
that pass the exit bound, the binary traits' onset or recovery bound, the transitions' state bound (``B``)
and the transitions' per-person bound (``_ub``), and the share where a competing hazard fires
(``transition_fired``; scheduled events aside); and, for what makes the state bound loose, its
largest value per state (``state_bound_max``, a monthly rate) and the continuous traits' range
over the population arrays that it was built from (``trait_range``). Prints one JSON line. The counters change the
kernel's speed, not its decisions.
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np

from benchmarks.kernel_ab import OneMonth
from utenforsk.core import kernel_cache
from utenforsk.core.bounds import bound_offset_state
from utenforsk.core.tables import AGE_YEARS

#: (counter row, pattern of the bound test's line in the generated month kernel)
TESTS = {"exit": (0, r"if u_exit_\d+ < B\[\d+ \+ ay\]:$"),
         "btrait": (1, r"if u_btrait_change\d+_\d+ < B\[\d+ \+ ay\] and "),
         "transition_state_bound": (2, r"if u_transition_\d+ < B\[\d+ \+ ay\]:$"),
         "transition_person_bound": (3, r"if u_transition_\d+ < _ub\d+:$"),
         "transition_fired": (4, r"if _lt\d+ > 0.0 and u_transition_\d+ < _lt\d+ and ")}


def instrument(source: str) -> str:
    """``source`` with ``t_prog[row, 0] += 1`` as the first line under each bound test."""
    out = []
    for line in source.split("\n"):
        out.append(line)
        for row, pat in TESTS.values():
            if re.search(pat, line.strip()):
                indent = len(line) - len(line.lstrip())
                out.append(" " * (indent + 4) + f"t_prog[{row}, 0] += 1")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bound_passes", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.05)
    a = ap.parse_args(argv)
    mo = OneMonth(a.scale, warm=1)
    alive = mo.alive
    pop, tal = mo.fresh()
    mo.run(kernel_cache.load(instrument(mo.g.source)).month_chunk, pop, tal)
    counts = tal.prog[0][:, 0]
    out = {"alive": alive, "scale": a.scale}
    out.update({f"{name}_share": float(counts[row]) / alive for name, (row, _) in TESTS.items()})
    m = mo.model
    out["state_bound_max"] = {name: round(float(mo.B[o:o + AGE_YEARS].max()), 3) for name, o in
                              ((n, bound_offset_state(s)) for s, n in enumerate(m.compiled.states))}
    with np.errstate(invalid="ignore"):  # the range B was built from (HazardBounds.args, no kernel range)
        lo, hi = np.nanmin(m.pop.ctraits, axis=1), np.nanmax(m.pop.ctraits, axis=1)
    out["trait_range"] = {name: [round(min(float(lo[k]), 0.0), 2), round(max(float(hi[k]), 0.0), 2)]
                          for k, name in enumerate(m.compiled.ctraits)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
