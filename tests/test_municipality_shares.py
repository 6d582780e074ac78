"""The Norway baseline's municipality-type shares at birth are those of data/municipalities.csv.

One place for the numbers: the data file; population.yaml restates them (with ranges and sources)
and this test keeps the two equal to 0.0005 (the four decimals written in the config).
"""

from pathlib import Path

import pytest

from utenforsk.config.loader import load_model_config as load_model
from utenforsk.pilots.municipalities import TYPES, load

ROOT = Path(__file__).resolve().parents[1]


def test_birth_shares_match_the_municipality_file():
    t = load().table
    pop = t.groupby("type").population_0_29.sum()
    data = (pop / pop.sum()).to_dict()
    cfg = load_model(ROOT / "configs" / "norway" / "baseline.yaml")
    at_birth = cfg.attributes["municipality"].at_birth["all"]
    for name in TYPES:
        assert at_birth[name].value == pytest.approx(data[name], abs=5e-4), name
