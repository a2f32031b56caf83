"""The claims of the three papers (WIELD, IESG, PIXIE) and the papers' own figures they are judged against.

:mod:`groundwords.studies.claims` writes one table row per claim and setting; the columns and
verdicts are described there.
"""

from __future__ import annotations

COLUMNS = ["claim_id", "study", "claim", "benchmark", "metric", "paper", "paper_delta", "delta", "ci95_lo",
           "ci95_hi", "n", "n_unit", "mde", "verdict", "kind", "note"]
VERDICTS = ("reproduced", "reversed", "no effect", "not detectable at this size", "differs", "not estimable",
            "not run", "inputs absent")

#: Every claim: id -> (study, text, kind). The table has at least one row per id.
CLAIMS = {
    "W1": ("WIELD", "each γ > 0 beats γ = 0 (vanilla CBOW) on MEN, at both dataset sizes", "greater"),
    "W2": ("WIELD", "the best γ is γ = 250 (ρ(250) − the best other γ > 0)", "greater"),
    "W3": ("WIELD", "the averaged image encodings help (Table 2's ⊕ image column − learned)", "greater"),
    "W4": ("WIELD", "the image encoding as an input (Table 1, λ > 0) does not beat λ = 0", "not_greater"),
    "I1": ("IESG", "IESG above the L2 baseline on image → word matching (Table 1)", "greater"),
    "I2": ("IESG", "IESG above the L2 baseline on word → image matching (Table 2)", "greater"),
    "I3": ("IESG", "IESG ≈ skip-gram on WordSim353 similarity / relatedness (Table 3)", "equivalent"),
    "P1": ("PIXIE", "PIXIE⊕ above SGNS on similarity benchmarks (all pairs) and on visual-word pairs (Table 2)",
           "greater"),
    "P2": ("PIXIE", "propagation: PIXIE⊕(∗) above SGNS on the hidden words' pairs (Table 3)", "greater"),
    "P3": ("PIXIE", "PIXIE+ / PIXIE⊕ retrieval ≥ SGNS (Table 6)", "greater"),
}

# --- the papers' own numbers -----------------------------------------------------------------
# WIELD Table 2 (MEN ρ): size -> γ -> (learned, with averaged image encodings)
WIELD_T2 = {
    "82k": {0: (0.4263, 0.4373), 10: (0.4926, 0.5100), 50: (0.5159, 0.5344), 250: (0.5735, 0.6017),
            10000: (0.5800, 0.5982)},
    "8.2k": {0: (0.1948, 0.2174), 10: (0.2774, 0.2961), 50: (0.4012, 0.4178), 250: (0.4081, 0.4342),
             10000: (0.3735, 0.4049)},
}
WIELD_T1 = {0: 0.12, 0.03: 0.10, 0.1: 0.09, 1: 0.11, 2: 0.14}  # MEN ρ, 8.2k captions, λ grid
IESG_T12 = {  # direction -> model -> (P@1, P@5, P@10) in %
    "image_to_word": {"l2": (28.8, 55.4, 69.3), "iesg": (62.9, 80.1, 85.8)},
    "word_to_image": {"l2": (28.3, 46.6, 56.9), "iesg": (31.0, 52.3, 62.5)},
}
IESG_T3 = {"ws353_sim": (0.702, 0.680), "ws353_rel": (0.604, 0.593)}  # (skip-gram, IESG)
PIXIE_NAMES = {"men": "MEN", "simlex999": "SimLex", "ws353": "WORDSIM", "ws353_sim": "SIM", "ws353_rel": "REL",
               "rg65": "EN-RG", "mc30": "EN-MC", "mturk287": "MTurk"}
PIXIE_SIMILARITY = ("simlex999", "ws353_sim", "rg65", "mc30")  # the paper's similarity sets we have
# PIXIE Table 2: column -> setting -> (SGNS, PIXIE⊕)
PIXIE_T2 = {
    "SimLex": {"all": (0.33, 0.39), "visual": (0.35, 0.53)}, "SIM": {"all": (0.66, 0.68), "visual": (0.66, 0.71)},
    "EN-RG": {"all": (0.60, 0.73), "visual": (0.55, 0.73)}, "EN-MC": {"all": (0.60, 0.69), "visual": (0.52, 0.71)},
    "MEN": {"all": (0.65, 0.68), "visual": (0.67, 0.76)}, "REL": {"all": (0.56, 0.52), "visual": (0.51, 0.59)},
    "MTurk": {"all": (0.65, 0.60), "visual": (0.63, 0.59)}, "WORDSIM": {"all": (0.61, 0.58), "visual": (0.60, 0.65)},
}
# PIXIE Table 3 (hidden words' pairs): column -> (SGNS, PIXIE⊕(∗))
PIXIE_T3 = {"SimLex": (0.40, 0.43), "SIM": (0.67, 0.72), "EN-RG": (0.57, 0.65), "EN-MC": (0.52, 0.60),
            "MEN": (0.68, 0.70), "REL": (0.53, 0.56), "MTurk": (0.75, 0.76), "WORDSIM": (0.63, 0.63)}
# PIXIE Table 6: model -> direction -> (R@1, R@5, R@10) in %
PIXIE_T6 = {"SGNS": {"i2s": (23.1, 49.0, 61.6), "s2i": (16.6, 41.0, 53.8)},
            "PIXIE+": {"i2s": (24.2, 52.5, 65.4), "s2i": (17.5, 43.8, 56.2)},
            "PIXIE⊕": {"i2s": (25.7, 55.7, 67.7), "s2i": (18.4, 44.9, 56.9)}}

ADAM_NOTE = ("under Adam each loss term learns at full speed whatever its weight, so γ = 50, 250 and 10000 give "
             "near-identical runs")
