"""Grounding: images attached to words, per-word image features, splits."""
