"""Measuring what a representation holds: metrics (forgetting, MIG, DCI, environment-inference accuracy),
the A.6 probes trained alongside the learner, the offline probes of frozen codes and the AtariARI state
probes. Imports the core and the environments, never the run loop."""
