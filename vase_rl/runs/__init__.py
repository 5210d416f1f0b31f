"""Sequence runs: the run directory's format (``run_format``), the one run loop (``training``) and its
data-parallel learner (``distributed``). The evaluation side reads runs through ``run_format`` only."""
