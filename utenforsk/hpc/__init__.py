"""Running experiments on batch systems and clusters, and surviving their faults.

- :mod:`.claims`: who is running which task, so that runners sharing one directory neither
  duplicate nor lose work; failed tasks are recorded.
- :mod:`.stop`: SIGTERM (preemption, walltime) stops a runner cleanly.
- :mod:`.slurm`: one SLURM job array per experiment, plus a dependent report job.
- :mod:`.dask_executor`: tasks on a Dask distributed cluster.
- :mod:`.status`: done / running / failed / missing tasks per scenario, with an ETA.

See docs/hpc.md.
"""
