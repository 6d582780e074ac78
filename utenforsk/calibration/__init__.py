"""Calibration, validation and sensitivity analysis (docs/calibration.md).

- :mod:`~utenforsk.calibration.targets`: schemas of targets files and calibration PARAMS files;
- :mod:`~utenforsk.calibration.params`: parameters named by dotted path (as in docs/model.md);
- :mod:`~utenforsk.calibration.metrics`: the simulated metrics targets map to (a probe that reads
  the model's public state month by month; the kernel is not touched);
- :mod:`~utenforsk.calibration.simulate`: replicates with common random numbers in a process pool;
- :mod:`~utenforsk.calibration.validate`, :mod:`~utenforsk.calibration.calibrate`,
  :mod:`~utenforsk.calibration.sensitivity`: the three commands.
"""
