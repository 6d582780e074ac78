"""The dashboard: ``utenforsk dashboard [--experiment DIR] [--port P]``.

A Solara app on Mesa's visualisation (``mesa.visualization``: ``Slider``/``UserInputs`` for the
inputs, a ``mesa.Model`` driven step by step, as SolaraViz does) with two tabs:

- *Explore* (:mod:`utenforsk.dashboard.run`, :mod:`utenforsk.dashboard.app`): choose interventions
  from the library, coverage, start year, target municipality types, seed, scale and parameter
  overrides; run live, month by month, beside the baseline with the same seed (common random
  numbers).
- *Results* (:mod:`utenforsk.dashboard.results`): browse a stored experiment directory's files.

Plots are Altair (Vega-Lite) charts (:mod:`utenforsk.dashboard.charts`); the page's JavaScript and
CSS come from installed packages (``solara-assets``), never from the internet
(:mod:`utenforsk.dashboard.server`).
"""
