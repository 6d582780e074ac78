"""Builds configs/norway/data/demography_series.csv from births.csv, immigration_by_age.csv,
immigration_history.csv, births_immigrant_parents.csv and projection.csv (the derivation of every
cell is in its *_derivation column)."""
import csv
D = "configs/norway/data/"
births = {int(r["year"]): r for r in csv.DictReader(open(D + "births.csv"))}
rows = []
b = {}
FIRST = 1971
# 1971-1976: deliveries only as five-year annual means in SSB «Fødte» 2005 table 3 (births.source.yaml)
for y in range(FIRST, 1976):
    b[y] = (round(61377 * 1.015), "derived: 1971-1975 annual mean of deliveries (61,377, SSB «Fødte» 2005 table 3) x 1.015 [U]")
b[1976] = (round((5 * 51618 - sum(float(births[k]["deliveries"]) for k in range(1977, 1981))) * 1.015),
           "derived: 5 x the 1976-1980 annual mean of deliveries (51,618) - 1977-1980 (births.csv), x 1.015 [U]")
for y in range(1977, 2025):
    r = births.get(y)
    if r and r["live_births"]:
        b[y] = (float(r["live_births"]), f"births.csv live_births [{r['live_births_evidence']}]")
    elif r and r["deliveries"]:
        b[y] = (round(float(r["deliveries"]) * 1.015), "derived: births.csv deliveries x 1.015 (live births per delivery 1.013-1.017, births.source.yaml notes) [U]")
for y in range(FIRST, 2025):
    if y not in b:
        lo = max(k for k in b if k < y); hi = min(k for k in b if k > y)
        v = b[lo][0] + (b[hi][0] - b[lo][0]) * (y - lo) / (hi - lo)
        b[y] = (round(v), f"interpolated linearly between {lo} and {hi} (not found) [U]")
# immigrations (gross, all ages)
imm = {}
for r in csv.DictReader(open(D + "immigration_by_age.csv")):
    if r["age_band"] == "all" and r["immigrations"]:
        imm[int(r["year"])] = (float(r["immigrations"]), f"immigration_by_age.csv ({r['source']}) [V]")
for r in csv.DictReader(open(D + "projection.csv")):
    if r["kind"] == "registered" and r["immigration"] and int(r["year"]) not in imm:
        imm[int(r["year"])] = (float(r["immigration"]), f"projection.csv registered base year of {r['projection_round']} [V]")
# before 2001: SSB's five-year means (immigration_history.csv); 1996 from the 1996-2000 mean and 1997-2000
means, years_ = {}, {}
for r in csv.DictReader(open(D + "immigration_history.csv")):
    a, z, v = int(r["period_first"]), int(r["period_last"]), float(r["immigrations_per_year"])
    (years_ if a == z else means)[(a, z)] = v
for (a, z), v in means.items():
    for y in range(a, z + 1):
        if (y, y) in years_:
            imm.setdefault(y, (years_[(y, y)], f"immigration_history.csv {y} ({'ssb_flytting_2002_tab6'}) [V]"))
        elif (a, z) == (1996, 2000):
            v96 = 5 * v - sum(years_[(k, k)] for k in range(1997, 2001))
            imm.setdefault(y, (v96, "derived: 5 x the 1996-2000 mean (34,690) - 1997-2000 (immigration_history.csv) [V/U]"))
        else:
            imm.setdefault(y, (v, f"immigration_history.csv: the {a}-{z} annual mean (ssb_histstat_3_31) [V as a mean, U for the year]"))
imm[2022] = (86600.0, "lower bound: SSB 2024 says 2022 was the highest year on record, above 2023's 86,600 (immigration_by_age.source.yaml) [U]")
proj = {}
for r in csv.DictReader(open(D + "projection.csv")):
    if r["projection_round"] == "NBF2020" and r["kind"] == "projected":
        proj.setdefault(r["alternative"], {})[int(r["year"])] = float(r["immigration"])
ALT = {"main": "MMM", "low": "MML", "high": "MMH"}
def interp(pts, y):
    ks = sorted(pts)
    if y <= ks[0]: return pts[ks[0]], ks[0], ks[0]
    if y >= ks[-1]: return pts[ks[-1]], ks[-1], ks[-1]
    lo = max(k for k in ks if k <= y); hi = min(k for k in ks if k >= y)
    if lo == hi: return pts[lo], lo, hi
    return pts[lo] + (pts[hi] - pts[lo]) * (y - lo) / (hi - lo), lo, hi
hist = {k: v[0] for k, v in imm.items()}
# share of births to two immigrant parents: cohort points at their middle birth year, linear between
share_pts = {}
for r in csv.DictReader(open(D + "births_immigrant_parents.csv")):
    mid = (int(r["born_first"]) + int(r["born_last"])) / 2
    share_pts[mid] = (float(r["share"]), r["evidence"])
def birth_share(y):
    v, lo, hi = interp({k: v[0] for k, v in share_pts.items()}, y)
    if y > max(share_pts):
        return v, "births_immigrant_parents.csv: 2016's 19.0% held (no later figure found; ASSUMPTION) [U]"
    if y < min(share_pts):
        return v, f"births_immigrant_parents.csv: the {lo:g} cohort's share held before it [U]"
    if lo == hi:
        return v, f"births_immigrant_parents.csv: the cohort centred on {lo:g} [{share_pts[lo][1]}]"
    return v, f"interpolated linearly between the cohorts centred on {lo:g} and {hi:g} (births_immigrant_parents.csv) [U]"
TFR0 = 1.44  # 2024, Dagsavisen/NTB quoting SSB (births.source.yaml)
TFR = {"main": 1.7, "low": 1.3, "high": 1.9}  # NBF2022 long-run fertility (projection.source.yaml)
out = []
for y in range(FIRST, 2061):
    for alt in (["registered"] if y <= 2024 else ["main", "low", "high"]):
        if y <= 2024:
            bv, bd = b[y]
            if y in imm:
                iv, idr = imm[y]
            elif y < 2001:
                iv, idr = hist[2001], "not found before 2001: held at 2001's value (assumption) [U]"
            else:
                pts = dict(hist); pts[2025] = proj["MMM"][2025]
                iv, lo, hi = interp(pts, y)
                idr = f"interpolated linearly between {lo} and {hi}" + (" (2025: NBF2020 MMM)" if hi == 2025 else "") + " (not found) [U]"
        else:
            f = min(1.0, (y - 2024) / 11)
            tfr = TFR0 + (TFR[alt] - TFR0) * f
            bv = round(b[2024][0] * tfr / TFR0)
            bd = (f"derived: 2024 births x TFR/1.44, TFR moving linearly from 1.44 (2024) to {TFR[alt]} in 2035 "
                  f"(NBF2022 {alt} long-run fertility; the timing and a constant number of women 25-39 are assumptions) [U]")
            iv, lo, hi = interp(proj[ALT[alt]], y)
            idr = f"NBF2020 {ALT[alt]} immigration, interpolated linearly between {lo} and {hi} (NBF2024 not found in tabular form) [V/U]"
        sv, sd = birth_share(y)
        out.append(dict(year=y, alternative=alt, births=round(bv), immigrations=round(iv), birth_share=round(sv, 4),
                        births_derivation=bd, immigrations_derivation=idr, birth_share_derivation=sd))
with open(D + "demography_series.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(out[0])); w.writeheader(); w.writerows(out)
print(len(out))
