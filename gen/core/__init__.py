"""What every part of gen and caption stands on: configs, user errors, safe outputs, processes, model cards."""
