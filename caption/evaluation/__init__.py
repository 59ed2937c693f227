"""Judging folders and judging the judge: score, metrics, meta-evaluations, oracle agreement, best-of-N."""
