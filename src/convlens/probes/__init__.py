"""Interpretation, measured: what convolution assumes, probed on trained runs (they never train)."""
