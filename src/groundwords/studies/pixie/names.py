"""PIXIE's representations: display name <-> vectors file, shared by the rules and the tables.

The names are the tables' row labels (``results/pixie_table*.csv``) character for character; the
paths are relative to ``results/pixie/models/``. ``workflow/rules/pixie.smk`` builds its targets
from these dicts and :mod:`groundwords.studies.pixie.similarity_tables` orders its rows by them, so a name
changes in one place.
"""

from __future__ import annotations

#: every representation of Tables 2 and 3 -> its vectors file: ``vectors.npy`` (with its ``vocab.txt``)
#: where the stage writes one, the same float32 values as its ``vectors.txt`` but read in
#: milliseconds (IV-SGNS's 1380-d text takes seconds to parse); the word2vec text otherwise
REPS = {
    "CNN": "cnn/vectors.txt",
    "VAE": "vae/vectors.npy",
    "SGNS": "sgns/vectors.npy",
    "CNN⊕SGNS": "cnn-sgns/vectors.txt",
    "VAE⊕SGNS": "vae-sgns/vectors.txt",
    "V-SGNS": "vsgns/vectors.npy",
    "IV-SGNS (LINEAR)": "ivsgns-linear/vectors.npy",
    "IV-SGNS (NONLINEAR)": "ivsgns-nonlinear/vectors.npy",
    "PIXIE+": "pixie/vectors.npy",
    "PIXIE⊕": "pixie/concat_vectors.txt",
}
#: the (∗) runs: trained with pixie.hide visual words' features withheld (Table 3)
HIDDEN_REPS = {
    "V-SGNS(∗)": "vsgns-hidden/vectors.npy",
    "IV-SGNS(∗)": "ivsgns-linear-hidden/vectors.npy",
    "PIXIE⊕(∗)": "pixie-hidden/concat_vectors.txt",
}
#: representations that exist for the visual words only (their pairs: the visual setting)
VISUAL_ONLY = ["CNN", "VAE", "CNN⊕SGNS", "VAE⊕SGNS"]
#: Table 4 compares SGNS with PIXIE⊕(∗); Table 5 lists SGNS, V-SGNS and PIXIE⊕
TABLE45 = ["SGNS", "V-SGNS", "PIXIE⊕", "PIXIE⊕(∗)"]
#: Table 6 (retrieval): run name (results/pixie/retrieval/<run>/) -> representation
RETRIEVAL = {"sgns": "SGNS", "vsgns": "V-SGNS", "ivsgns-linear": "IV-SGNS (LINEAR)",
             "pixie-plus": "PIXIE+", "pixie-concat": "PIXIE⊕"}
#: Tables 2, 3 and 6 compare every representation with this one
BASELINE = "SGNS"
#: Table 3's rows, in order
TABLE3_ORDER = ["SGNS", "V-SGNS", "IV-SGNS (LINEAR)", "PIXIE⊕", "V-SGNS(∗)", "IV-SGNS(∗)", "PIXIE⊕(∗)"]


def rep_files(hide: int, root: str = "results/pixie/models") -> dict[str, str]:
    """Display name -> vectors file of every representation a run trains (the (∗) ones when
    ``hide`` > 0)."""
    reps = dict(REPS)
    if hide:
        reps.update(HIDDEN_REPS)
    return {name: f"{root}/{path}" for name, path in reps.items()}
