"""Plumbing shared by every layer: errors, atomic I/O, typed configs, output checks, logging.

Nothing here imports any other part of stale.
"""
