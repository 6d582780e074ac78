"""Builds configs/norway/data/demography_series.csv from births.csv, immigration_by_age.csv and
projection.csv (the derivation of every cell is in its *_derivation column)."""
import csv
D = "configs/norway/data/"
births = {int(r["year"]): r for r in csv.DictReader(open(D + "births.csv"))}
rows = []
b = {}
for y in range(1990, 2025):
    r = births.get(y)
    if r and r["live_births"]:
        b[y] = (float(r["live_births"]), f"births.csv live_births [{r['live_births_evidence']}]")
    elif r and r["deliveries"]:
        b[y] = (round(float(r["deliveries"]) * 1.015), "derived: births.csv deliveries x 1.015 (live births per delivery 1.013-1.017, births.source.yaml notes) [U]")
for y in range(1990, 2025):
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
TFR0 = 1.44  # 2024, Dagsavisen/NTB quoting SSB (births.source.yaml)
TFR = {"main": 1.7, "low": 1.3, "high": 1.9}  # NBF2022 long-run fertility (projection.source.yaml)
out = []
for y in range(1990, 2061):
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
        out.append(dict(year=y, alternative=alt, births=round(bv), immigrations=round(iv), births_derivation=bd, immigrations_derivation=idr))
with open(D + "demography_series.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(out[0])); w.writeheader(); w.writerows(out)
print(len(out))
