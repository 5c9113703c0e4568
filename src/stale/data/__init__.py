"""Data layer: annotations, features, time conventions and zero-shot class splits."""
