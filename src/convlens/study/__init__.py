"""The study: the whole assignment (EDA, baseline, CNN design, controlled experiments, probes, deployment)
run end to end into one directory with results.json and a self-contained report."""
