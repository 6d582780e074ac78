"""The real municipalities: the data file, name look-up, the four-type grouping, and who lives where.

``configs/norway/data/municipalities.csv`` (sidecar ``municipalities.source.yaml``) lists the 357
municipalities of 2024 with their populations on 1 January 2024 [U] and 2023 age shares [U]. This
module is the one place that reads it.

Grouping into the model's four municipality types (the service areas of ``population.yaml``):
SSB's 2020 centrality class 1-2 -> ``central_large``, 3 -> ``central_medium``, 4 -> ``less_central``,
5-6 -> ``least_central`` (as the types' descriptions say). 186 municipalities have no 2020 class in
the data file; for them, INTERIM, the old 1994 standard is mapped by its modal 2020 grouping among
the 171 municipalities that have both (crosstab in docs/pilots.md): 3 -> central_medium,
2 -> less_central, 1 and 0 -> least_central; where predecessors disagree (8 municipalities) the most
central predecessor's class is used. Each row says which rule placed it (``group_source``).

Who lives where: a person's municipality is drawn once, at entry (birth or arrival), *within* the
municipality type the model already gave them, with probability proportional to the municipality's
population 0-29 (2023 age shares x 2024 totals, an assumption the sidecar states). The draw is a pure
function of (seed, person id), on its own declared decision (``rng.D_KOMMUNE``), so it changes no
other draw: national results are bit-for-bit what they were. With services per municipality the
entry kernel stores it as the person's service area (``pop.area``), which is then read instead of
drawing again; with services per type it is drawn when needed. Migration between municipalities is
not modelled (a person stays in their municipality until 30).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

from utenforsk.core import rng
from utenforsk.core.tables import AGE_YEARS
from utenforsk.errors import ConfigError

DATA_FILE = Path(__file__).resolve().parents[2] / "configs" / "norway" / "data" / "municipalities.csv"
TYPES = ("central_large", "central_medium", "less_central", "least_central")
CLASS_2020_TO_TYPE = {1: 0, 2: 0, 3: 1, 4: 2, 5: 3, 6: 3}
CLASS_1994_TO_TYPE = {3: 1, 2: 2, 1: 3, 0: 3}  # interim: modal 2020 grouping among rows with both
AGE_BANDS = {"0_5": (0, 6), "6_15": (6, 16), "16_19": (16, 20), "20_24": (20, 25), "25_29": (25, 30)}
REQUIRED = ("kommunenummer", "name", "name_short", "fylke", "population_2024_01_01",
            "centrality_class_1to6", "centrality_1994_0to3", "centrality_1994_range",
            *(f"share_{b}_2023" for b in AGE_BANDS))


@dataclass(frozen=True)
class Municipalities:
    """The municipality table (one row per municipality, in the file's order) and look-ups."""

    table: pd.DataFrame
    source: str

    def __len__(self) -> int:
        return len(self.table)

    @property
    def numbers(self) -> list[str]:
        return list(self.table.kommunenummer)

    def within_type_cdf(self, n_types: int = len(TYPES)) -> tuple[np.ndarray, np.ndarray]:
        """For each type, the municipality indices of that type and the cumulative shares of
        population 0-29 within it: ``(index[type, j], cdf[type, j])`` padded with -1 / 1.0."""
        t = self.table
        width = int(t.groupby("type_index").size().max())
        index = np.full((n_types, width), -1, np.int64)
        cdf = np.ones((n_types, width))
        for k in range(n_types):
            rows = np.flatnonzero(t.type_index.to_numpy() == k)
            if len(rows) == 0:
                continue
            w = t.population_0_29.to_numpy()[rows]
            index[k, :len(rows)] = rows
            cdf[k, :len(rows)] = np.cumsum(w) / w.sum()
        return index, cdf

    def resolve(self, names, *, file: str | None = None, key: str = "who.municipalities") -> list[int]:
        """Row indices for names as SSB writes them, short names, or 4-digit numbers.

        Unknown or ambiguous names raise :class:`ConfigError` (exit 2) with the closest matches."""
        t = self.table
        out = []
        for raw in names:
            name = str(raw).strip()
            if name.isdigit():
                hits = np.flatnonzero(t.kommunenummer.to_numpy() == name.zfill(4))
            else:
                low = name.casefold()
                hits = np.flatnonzero(t.name.str.casefold().to_numpy() == low)
                if len(hits) == 0:
                    hits = np.flatnonzero(t.name_short.str.casefold().to_numpy() == low)
            if len(hits) == 1:
                out.append(int(hits[0]))
                continue
            if len(hits) > 1:
                options = "; ".join(f"{t.name.iloc[h]} ({t.kommunenummer.iloc[h]})" for h in hits)
                raise ConfigError("ambiguous municipality name: give the SSB name or number",
                                  file=file, key=key, value=name, allowed=options)
            labels = list(t.name) + list(t.name_short)
            close = difflib.get_close_matches(name, labels, n=5, cutoff=0.5)
            close = list(dict.fromkeys(close))
            raise ConfigError("unknown municipality", file=file, key=key, value=name,
                              allowed=("closest: " + ", ".join(close)) if close else
                              f"a name or 4-digit number from {self.source}")
        return out


def _group(row) -> tuple[int, str]:
    c20 = row.centrality_class_1to6
    if pd.notna(c20):
        return CLASS_2020_TO_TYPE[int(c20)], "centrality_2020"
    c94 = row.centrality_1994_0to3
    if pd.notna(c94):
        return CLASS_1994_TO_TYPE[int(c94)], "interim_1994"
    hi = int(str(row.centrality_1994_range).split("-")[1])
    return CLASS_1994_TO_TYPE[hi], "interim_1994_most_central_predecessor"


def load(path: str | Path = DATA_FILE) -> Municipalities:
    """Read and check the municipality file; bad content raises ConfigError naming file and key."""
    return _load(str(Path(path).resolve()))


@lru_cache(maxsize=4)
def _load(path: str) -> Municipalities:
    try:
        t = pd.read_csv(path, dtype={"kommunenummer": str, "fylkesnummer": str, "centrality_1994_range": str})
    except (OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read the municipality file: {exc}", file=path) from None
    missing = [c for c in REQUIRED if c not in t.columns]
    if missing:
        raise ConfigError("municipality file lacks columns", file=path, key=", ".join(missing),
                          allowed=", ".join(REQUIRED))
    bad = t.kommunenummer.isna() | ~t.kommunenummer.fillna("").str.fullmatch(r"\d{4}")
    if bad.any():
        raise ConfigError("kommunenummer must be 4 digits", file=path, key="kommunenummer",
                          value=t.kommunenummer[bad].iloc[0])
    if t.kommunenummer.duplicated().any():
        raise ConfigError("duplicate kommunenummer", file=path, key="kommunenummer",
                          value=t.kommunenummer[t.kommunenummer.duplicated()].iloc[0])
    pop = t.population_2024_01_01
    if pop.isna().any() or (pop <= 0).any():
        raise ConfigError("population_2024_01_01 must be positive", file=path,
                          key="population_2024_01_01", value=pop[pop.isna() | (pop <= 0)].iloc[0])
    shares = t[[f"share_{b}_2023" for b in AGE_BANDS]]
    if shares.isna().any().any() or ((shares < 0) | (shares > 1)).any().any() or (shares.sum(axis=1) > 1).any():
        raise ConfigError("age shares must be in [0, 1] and sum to at most 1", file=path, key="share_*_2023")
    t = t.copy()
    for b in AGE_BANDS:
        t[f"population_{b}"] = t[f"share_{b}_2023"] * pop
    t["population_0_29"] = shares.sum(axis=1) * pop
    grouped = [_group(r) for r in t.itertuples()]
    t["type_index"] = [g[0] for g in grouped]
    t["type"] = [TYPES[g[0]] for g in grouped]
    t["group_source"] = [g[1] for g in grouped]
    return Municipalities(table=t.reset_index(drop=True), source=path)


def service_areas(cfg) -> tuple[np.ndarray, list[str]]:
    """A model's service areas (utenforsk/services/agents.py): the municipality type of each
    area and its name. With ``service_areas: municipality`` the data file's municipalities
    ("0301 Oslo", ...), else the model's municipality types."""
    if cfg.service_areas == "municipality":
        t = load().table
        return (t.type_index.to_numpy().astype(np.int64),
                [f"{nr} {n}" for nr, n in zip(t.kommunenummer, t.name_short)])
    return np.arange(len(cfg.municipalities), dtype=np.int64), list(cfg.municipalities)


@njit(cache=True, nogil=True)
def kommune_row(seed_key, pid, k, index, cdf):
    """Municipality row of person ``pid`` of type ``k``: one uniform on the person's own decision
    ``rng.D_KOMMUNE``, inverted through the within-type CDF (the one definition: :func:`assign`,
    :func:`tally_q4` and the entry kernel, codegen.entrants, for every entrant, call it)."""
    u = rng.uniform(rng.person_month_key(seed_key, pid, 0), rng.D_KOMMUNE)
    i = np.searchsorted(cdf[k], u, side="right")
    if i >= cdf.shape[1] or index[k, i] < 0:  # u beyond the last share (rounding): the last row
        i = cdf.shape[1] - 1
        while index[k, i] < 0:
            i -= 1
    return index[k, i]


@njit(cache=True)
def assign(seed_key, ids, types, index, cdf):
    """Municipality row of each person (``ids``, their type codes ``types``): :func:`kommune_row`."""
    out = np.empty(ids.shape[0], np.int16)
    for j in range(ids.shape[0]):
        out[j] = kommune_row(seed_key, ids[j], types[j], index, cdf)
    return out


#: the Q4 pass's cells: [municipality, age-year, status], status = NEET + 2 health benefit +
#: 4 completed upper secondary (what :func:`fold_q4` folds into the fields)
Q4_AGES, Q4_STATUS = AGE_YEARS, 8


@njit(cache=True, nogil=True)
def tally_q4(seed_key, lo, hi, capacity, alive, birth, type_attr, state, flags, month, neet, hb,
             us_bit, index, cdf, cells, area, by_area):
    """One pass over persons ``lo .. hi-1``: count each living person in
    ``cells[municipality, age-year, status]`` (:data:`Q4_STATUS`); :func:`fold_q4` sums the
    cells into the fields. One integer increment per person (the fields' tests per person were
    most of the pass once the municipality was read, not drawn).

    ``by_area``: the person's municipality is their service area ``area[slot]`` (services per
    municipality: the entry kernel set it to :func:`kommune_row`, the same row), which saves the
    draw and the search per person (60 of ~65 ms a December at 10^6 alive); else it is drawn
    here."""
    s = lo % capacity - 1
    for pid in range(lo, hi):
        s += 1
        if s == capacity:
            s = 0
        if alive[s] != 1:
            continue
        if by_area:
            row = np.int64(area[s])
        else:
            row = kommune_row(seed_key, pid, type_attr[s], index, cdf)
        age = (month - np.int64(birth[s])) // 12
        if age < 0 or age >= Q4_AGES:
            continue  # in no field (none reaches 30)
        st = state[s]
        done = 1 if us_bit >= 0 and (flags[s] >> us_bit) & 1 == 1 else 0
        cells[row, age, (1 if neet[st] else 0) + (2 if hb[st] else 0) + 4 * done] += 1


@njit(cache=True, nogil=True)
def fold_q4(cells, fields, counts):
    """Add the cells of :func:`tally_q4` (summed over the workers) to ``counts[municipality, f]``
    for every field ``f`` (``fields[f] = (age from, age to, what)``, what: 0 all, 1 NEET, 2 health
    benefit, 3 completed upper secondary): integer counts, so the same numbers as adding 1.0 per
    person."""
    for k in range(cells.shape[0]):
        for f in range(fields.shape[0]):
            what = fields[f, 2]
            n = 0
            for a in range(max(fields[f, 0], 0), min(fields[f, 1], Q4_AGES)):
                for st in range(Q4_STATUS):
                    if what == 0 or (what == 1 and st & 1) or (what == 2 and st & 2) or (what == 3 and st & 4):
                        n += cells[k, a, st]
            counts[k, f] += n


#: the "person" ids whose draws are the municipality intercepts: SCHEDULE_ID + 1 + municipality row
EFFECT_ID0 = 2**62 + 1


def draw_effects(seed_key, sds, weights: np.ndarray, decision0: int) -> np.ndarray:
    """Random intercepts ``[effect, municipality]`` of one run: ``sd_e * z_ek`` with ``z_ek``
    standard normal, one uniform per municipality on decision ``decision0 + e`` of a reserved
    id (so no person's draw moves), centred to a population-weighted mean of exactly zero over
    ``weights`` (population 0-29), so the intercepts shift municipalities, not the nation."""
    from scipy.special import ndtri

    K = len(weights)
    out = np.zeros((max(len(sds), 1), K))
    w = np.asarray(weights, float) / np.sum(weights)
    for e, sd in enumerate(sds):
        # (a key above 2**63 comes back as a Python int: keep it a uint64)
        u = np.array([rng.uniform(np.uint64(rng.person_month_key(seed_key, np.int64(EFFECT_ID0 + k), 0)),
                                  np.uint64(decision0 + e)) for k in range(K)])
        z = ndtri(np.clip(u, 1e-12, 1 - 1e-12))
        out[e] = sd * (z - np.dot(w, z))
    return out
