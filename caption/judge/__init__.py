"""The captioner as a judge: log p(text | image), views, attribute probabilities, negatives, labels, calibration."""
