"""Calibration commands (``validate``, ``calibrate``, ``sensitivity``): registered on :data:`utenforsk.cli.app`."""

from __future__ import annotations
