"""Tables of one run: periods (per policy year), cohorts (per birth year), snapshot (per person).

Written as Parquet with the run's provenance (config hash, seed, version) in each file's schema
metadata, plus ``run.json``. Period rates are person-month weighted means over the calendar year.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from utenforsk import __version__
from utenforsk.errors import UserError
from utenforsk.core.kernel import (CO_AGED_OUT, CO_AGED_OUT_HB, CO_AGED_OUT_LONG, CO_ENTERED,
                                   CO_EXPO_M, CO_NEET_M, CO_US_DONE, CO_US_DUE, COHORT_OFFSET,
                                   SV_CLIENTS, SV_DETECTED, SV_DISCHARGED, SV_IN_NEED,
                                   SV_REF_ARRIVED, SV_REF_EXPIRED, SV_REF_LOST)
from utenforsk.metrics import headline
from utenforsk.services.agents import queue_flow


def periods(model) -> pd.DataFrame:
    """One row per policy year: NEET rates, benefit rate, coverage, state shares, services."""
    rows = []
    c = model.compiled
    for year, months in headline.history_by_year(model).items():
        age_state = sum(h["age_state"] for h in months)
        row = {"year": year, "months": len(months)}
        row.update(headline.rates(model.state_masks, age_state))
        total = age_state.sum()
        for s, name in enumerate(c.states):
            row[f"share_{name}"] = age_state[:, s].sum() / total if total else np.nan
        row["population_0_29"] = total / len(months) / model.config.scale
        sv = sum(h["sv"] for h in months)  # [service, municipality, field], summed over months
        for s, name in enumerate(c.services):
            tot = sv[s].sum(axis=0)
            kind = model.config.services[name].kind
            waiting, admitted, _ = queue_flow(kind, tot)
            row[f"clients_{name}"] = tot[SV_CLIENTS] / len(months) / model.config.scale
            row[f"queue_{name}"] = waiting / len(months) / model.config.scale
            row[f"wait_months_{name}"] = waiting / admitted if admitted else np.nan
            sent = tot[SV_REF_ARRIVED] + tot[SV_REF_LOST]
            row[f"referrals_lost_share_{name}"] = tot[SV_REF_LOST] / sent if sent else np.nan
            if kind == "follow_up":  # unserved need found per month, discharges, referrals that came too late
                row[f"detection_rate_{name}"] = tot[SV_DETECTED] / tot[SV_IN_NEED] if tot[SV_IN_NEED] else np.nan
                row[f"discharges_{name}"] = tot[SV_DISCHARGED] / len(months) / model.config.scale
                row[f"referrals_expired_{name}"] = tot[SV_REF_EXPIRED] / len(months) / model.config.scale
        rows.append(row)
    return pd.DataFrame(rows)


def cohort_table(model, tally_cohort: np.ndarray) -> pd.DataFrame:
    """Cohort metrics from cohort tallies ``[birth-year index, field]``; NaN where unobserved."""
    first, last = model.first_year, model.first_year + model.month // 12 - 1
    rows = []
    for by in range(first, last + 1):
        k = by - model.first_year + COHORT_OFFSET // 12
        t = tally_cohort[k]
        complete_5y = by + 21 <= last          # everyone starting at 16 has had 5 years
        aged_out = by + 30 <= last             # everyone has reached 30
        rows.append({
            "birth_year": by,
            "n": int(t[CO_ENTERED]),
            "upper_secondary_completion_5y": (t[CO_US_DONE] / t[CO_US_DUE]
                                              if complete_5y and t[CO_US_DUE] else np.nan),
            "long_term_neet_share": (t[CO_AGED_OUT_LONG] / t[CO_AGED_OUT]
                                     if aged_out and t[CO_AGED_OUT] else np.nan),
            "exclusion_years_15_29": (15.0 * t[CO_NEET_M] / t[CO_EXPO_M]
                                      if aged_out and t[CO_EXPO_M] else np.nan),
            "health_benefit_at_29": (t[CO_AGED_OUT_HB] / t[CO_AGED_OUT]
                                     if aged_out and t[CO_AGED_OUT] else np.nan),
        })
    return pd.DataFrame(rows)


def cohorts(model) -> pd.DataFrame:
    return cohort_table(model, model.tally.cohort.sum(axis=0))


def cohorts_by_group(model) -> pd.DataFrame:
    """The cohort table for each category of each ``report_by`` attribute (long format)."""
    c, frames = model.compiled, []
    grp = model.tally.cohort_grp.sum(axis=0)
    for g, attr in enumerate(c.report_by):
        for k, cat in enumerate(model.config.attributes[attr].categories):
            df = cohort_table(model, grp[g, k])
            df.insert(0, "category", cat)
            df.insert(0, "attribute", attr)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def snapshot(model) -> pd.DataFrame:
    """One row per person alive at the end of the last simulated month."""
    c, cfg, pop = model.compiled, model.config, model.pop
    slots = model.alive_slots()
    last_month = model.month - 1
    out = {"age": ((last_month - pop.birth[slots].astype(np.int64)) // 12).astype(np.int16)}
    for a, name in enumerate(c.attributes):
        cats = cfg.attributes[name].categories
        codes = pop.attrs[a, slots]
        if cats == ["no", "yes"]:
            out[name] = codes == 1
        else:
            out[name] = pd.Categorical.from_codes(codes, categories=cats)
    if model.kommuner is not None:  # alive_ids() is in slot order of alive_slots()
        out["kommunenummer"] = pd.Categorical.from_codes(model.kommune_of(model.alive_ids()),
                                                         categories=model.kommuner.numbers)
    state = pop.state[slots]
    out["state"] = pd.Categorical.from_codes(state, categories=c.states)
    out["neet"] = model.state_masks["neet"][state]  # the reporting definition
    if "completed_upper_secondary" in c.flags:
        bit = c.flags.index("completed_upper_secondary")
        out["completed_upper_secondary"] = (pop.flags[slots] >> bit) & 1 == 1
    out["months_neet"] = pop.months_neet[slots]
    for t, name in enumerate(c.ctraits):
        out[name] = pop.ctraits[t, slots]
    for b, name in enumerate(c.btraits):
        out[name] = (pop.btraits[slots] >> b) & 1 == 1
    return pd.DataFrame(out)


def periods_by_municipality(model) -> pd.DataFrame:
    """One row per policy year and municipality, register-style: status counted at the end of
    December (a Q4 point-in-time count, as SSB's register figures are; the exact reference week is
    not modelled).

    NEET 15-29 and by age group (the model's reporting definition), health benefits 18-29, and
    ``completed_upper_secondary_21`` (share of 21-year-olds who have completed, a proxy for the
    five-year completion SSB/Udir report). Counts are scaled to real persons. With services per
    municipality (``service_areas: municipality``), each service's mean clients and queue over the
    year (real persons) and its mean wait in months (queue-months per admission) in the
    municipality; with services per municipality type they are the type's (``periods.parquet``)
    and not reported here."""
    from utenforsk.model import KQ_FIELDS

    if model.kommuner is None:
        return pd.DataFrame()
    t = model.kommuner.table
    fields = list(KQ_FIELDS)
    frames = []
    for year, counts in sorted(model.kommune_q4.items()):
        c = counts
        col = {f: c[:, i] for i, f in enumerate(fields)}
        ratio = lambda a, b: np.divide(col[a], col[b], out=np.full(len(t), np.nan), where=col[b] > 0)  # noqa: E731
        frames.append(pd.DataFrame({
            "year": year, "kommunenummer": t.kommunenummer, "name": t.name, "type": t.type,
            "fylke": t.fylke, "simulated_persons_15_29": col["n_15_29"],
            "population_0_29": col["n_0_29"] / model.config.scale,
            "population_15_29": col["n_15_29"] / model.config.scale,
            "neet_15_29": col["neet_15_29"] / model.config.scale,
            "neet_rate_15_29": ratio("neet_15_29", "n_15_29"),
            "neet_rate_15_19": ratio("neet_15_19", "n_15_19"),
            "neet_rate_20_24": ratio("neet_20_24", "n_20_24"),
            "neet_rate_25_29": ratio("neet_25_29", "n_25_29"),
            "health_benefit_rate_18_29": ratio("health_benefit_18_29", "n_18_29"),
            "completed_upper_secondary_21": ratio("completed_21", "n_21"),
            **_kommune_services(model, year),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _kommune_services(model, year: int) -> dict:
    """Per municipality: ``clients_S``, ``queue_S`` (yearly means, real persons) and
    ``wait_months_S`` for every service S, from the year's service tallies (services per
    municipality only)."""
    sv = getattr(model, "kommune_sv", {}).get(year)
    if sv is None:
        return {}
    out = {}
    months = 12.0
    for s, name in enumerate(model.compiled.services):
        kind = model.config.services[name].kind
        flow = np.array([queue_flow(kind, sv[s, a]) for a in range(sv.shape[1])], float)
        out[f"clients_{name}"] = sv[s, :, SV_CLIENTS] / months / model.config.scale
        out[f"queue_{name}"] = flow[:, 0] / months / model.config.scale
        out[f"wait_months_{name}"] = np.divide(flow[:, 0], flow[:, 1], out=np.full(len(flow), np.nan),
                                               where=flow[:, 1] > 0)
    return out


def provenance(model) -> dict:
    import mesa
    import numba

    return {"config_name": model.config.name, "config_hash": model.config_hash,
            "seed": model.run_seed, "scale": model.config.scale, "version": __version__,
            "start_year": model.config.calendar.start_year,
            "horizon_years": model.config.calendar.horizon_years,
            "burn_in_years": model.config.calendar.burn_in_years,
            "threads": model.n_threads, "python": platform.python_version(),
            "numba": numba.__version__, "mesa": mesa.__version__, "numpy": np.__version__}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path) -> None:
    """Give a finished temp file normal permissions (mkstemp makes it 0600) and rename it."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def write_parquet(df: pd.DataFrame, path: Path, meta: dict) -> None:
    """Write atomically (temp file + rename) with provenance in the schema metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"utenforsk": json.dumps(meta).encode()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(obj: dict | list, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=float)
    _publish(tmp, path)


def write_text(text: str, path: Path) -> None:
    """Write a text file atomically (a unique temp file + rename), as :func:`write_json`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    _publish(tmp, path)


def check_output_path(out: Path) -> None:
    """``--out`` must be a directory or not exist yet (checked before anything is read or written)."""
    if out.exists() and not out.is_dir():
        raise UserError("output path exists and is not a directory", key="--out", value=str(out),
                        allowed="a directory, or a path that does not exist yet")


def ensure_output_dir(out: Path) -> None:
    """Create ``out`` and prove it writable, before hours of simulation depend on it."""
    check_output_path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=out, prefix=".write-test.").close()
    except OSError as exc:
        raise UserError(f"cannot write to the output directory ({exc.strerror or exc})", key="--out",
                        value=str(out), allowed="a writable directory") from None


def write_run(model, out: Path, extra: dict | None = None) -> dict[str, pd.DataFrame]:
    """Write periods, cohorts, cohorts_by_group, snapshot, periods_by_municipality and run.json."""
    ensure_output_dir(out)
    meta = provenance(model)
    tables = {"periods": periods(model), "cohorts": cohorts(model),
              "cohorts_by_group": cohorts_by_group(model), "snapshot": snapshot(model),
              "periods_by_municipality": periods_by_municipality(model)}
    for name, df in tables.items():
        write_parquet(df, out / f"{name}.parquet", meta)
    write_json({**meta, "timings_s": model.timings, "persons_alive": int(len(tables["snapshot"])),
                "bytes_per_person": model.bytes_per_person, **(extra or {})}, out / "run.json")
    return tables
