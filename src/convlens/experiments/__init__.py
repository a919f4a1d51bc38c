"""Controlled experiments: spec -> resolved levels (one-factor check) -> run store -> statistics -> plots."""

from convlens.experiments.builtin import BUILTIN_EXPERIMENTS
from convlens.experiments.spec import ExperimentSpec, load_spec, parse_spec, with_changes

__all__ = ["BUILTIN_EXPERIMENTS", "ExperimentSpec", "load_spec", "parse_spec", "with_changes"]
