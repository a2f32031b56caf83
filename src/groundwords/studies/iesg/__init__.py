"""IESG (Luo): pretraining, IESG + L2 baseline training, matching, tables."""
