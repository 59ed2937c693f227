"""The training loop both models share: one optimizer step, schedule, numerics, precision, checkpoints, run folders."""
