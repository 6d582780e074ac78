"""HPC commands (``utenforsk slurm``, ``utenforsk status``): registered on :data:`utenforsk.cli.app`."""

from __future__ import annotations
