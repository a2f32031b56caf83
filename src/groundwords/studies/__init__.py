"""One sub-package per paper (WIELD, IESG, PIXIE) plus the claims table across them."""
