"""Ray Train plumbing shared by every training run: trainer, checkpoints, integrity, the worker loop."""
