"""Benchmarks (``python -m benchmarks``) and the per-agent Mesa reference implementation."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "norway" / "baseline.yaml"
ALIVE_AT_SCALE_1 = 1.92e6  # people alive aged 0-29 in the baseline at scale 1 (measured)
