"""WIELD (Covey et al.): the training stage, its tables and figures."""
