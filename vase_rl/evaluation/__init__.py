"""Post-hoc evaluation of a run directory: offline representation quality per stage (``quality``),
probes, forgetting and disentanglement (``evaluate``), figures (``plots``) and the markdown report
(``report``). Never imports the trainer."""
