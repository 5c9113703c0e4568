"""The package version (one place; ``stale.__version__``, run records and result files read it)."""

__version__ = "0.2.0"
