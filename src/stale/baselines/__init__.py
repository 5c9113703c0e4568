"""Reference detectors STALE is compared with: the training-free CLIP detector, the
linear-probe detector and the two-stage B-I baseline (see docs/baselines.md)."""
