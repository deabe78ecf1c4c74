"""Training: config, the shared loop, EMA, DDP helpers, logs, checkpoints (tasks: mrt.train.tasks)."""
