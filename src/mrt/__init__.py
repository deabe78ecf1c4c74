"""mrt: an extreme learned image codec with 1-D latent tokens (Mixed RWKV-Transformer).

Import the codec with ``from mrt.codec import Codec``; nothing heavy happens at import time.
"""

__version__ = "0.1.0"
