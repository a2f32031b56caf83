"""Evaluation: word similarity, similarity sets, statistics, matching, neighbours."""
