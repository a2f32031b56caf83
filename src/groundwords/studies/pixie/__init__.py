"""PIXIE (Ailem et al.): features, training, baselines, retrieval, tables."""
