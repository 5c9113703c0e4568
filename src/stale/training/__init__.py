"""Training machinery: the trainer loop, checkpoints, device/seed/thread runtime and DDP."""
