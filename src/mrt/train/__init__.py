"""Training: the train command, config, the shared loop and its parts (optimizer, state, logs, checkpoints,
EMA, DDP helpers); the stage tasks are in mrt.train.tasks."""
