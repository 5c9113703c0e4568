"""stale: zero-shot temporal action detection with vision-language prompting (STALE)."""

__version__ = "0.1.0"
