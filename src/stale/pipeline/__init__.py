"""What a run does: assemble it from its config, train, predict, detect in video files, extract
features, profile, and the demo's whole zero-shot pipeline (the CLI is a thin layer over this)."""
