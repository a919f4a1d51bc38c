"""The Python API: what ``import convlens`` offers. The CLI's commands are built on these functions and classes
(a few, such as ``models show`` and ``experiment status``, also read the library's modules directly); everything
else in the package is internal."""
