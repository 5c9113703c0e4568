"""Run-level work: assembling a run from its config, and the train / predict / demo / extract /
detect / experiment commands built on it (the CLI is a thin layer over this package)."""
