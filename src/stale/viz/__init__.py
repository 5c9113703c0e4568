"""Pictures: training curves, detection timelines, per-class AP and PR curves."""
