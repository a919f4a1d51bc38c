"""The Python API: what ``import convlens`` offers. The CLI is a thin layer over exactly these functions and
classes; everything else in the package is internal."""
