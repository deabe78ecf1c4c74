"""Training data: image/latent cache, aligned random crops, batches, synthetic items for tests."""
