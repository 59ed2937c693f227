"""Measuring generated images: oracle accuracy, CAS and Frechet distance with a real-data classifier, sampler sweeps."""
