"""Training data: the image/latent cache, aligned random crops and their batches."""
