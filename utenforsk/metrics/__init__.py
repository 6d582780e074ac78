"""Metrics computed from the kernel's tallies (period, cohort) and from the population (snapshot)."""
