"""gen: GPT-2-conditioned pixel-space diffusion — data, training, sampling."""
