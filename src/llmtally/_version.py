"""The one version source: hatch reads it for the wheel, ``llmtally.__version__`` re-exports it."""

__version__ = "0.1.0"
