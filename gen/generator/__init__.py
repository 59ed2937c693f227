"""The generator: GPT-2 text encoder, diffusion maths, the pipeline, sampling and best-of-N."""
