"""nn building blocks: Bi-RWKV, ViT, MLP and LFQ (import the submodules directly)."""
