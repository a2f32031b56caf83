"""WIELD's trained variants: a run's directory name -> the stage's settings.

Every trained model lives under ``results/<subset>/<variant>/<param>-<value>/seed-<s>/``:

* ``wield``                 Table 2: the γ grid
* ``wield-window<N>``       Table 4: the window-size control (N = wield.window_control.window)
* ``wield-wordtarget``      §6.2 control: word-specific image targets, the γ grid
* ``cbow-caption``          §6.2 control: CBOW whose window spans the whole caption
* ``imginput-caption|word`` Table 1: the image encoding as an input, the λ grid

``workflow/rules/wield.smk`` (wildcards, inputs, the stage's options) and the tables read these
names from here.
"""

from __future__ import annotations

#: the wield.* keys of one training run, passed to the stage whole (the grids, seeds and tables are
#: the rules'; threads come from the rule's ``threads``)
STAGE_KEYS = ("dim", "window", "epochs", "batch_size", "lr", "objective", "negatives", "optimizer",
              "lr_schedule", "engine", "image_block", "train_dead_images", "threads", "device")
#: any window longer than every caption: the whole caption
CAPTION_WINDOW = 100_000
#: variants whose image HDF5 is keyed by word, not by image
WORD_KEYED = frozenset({"wield-wordtarget", "imginput-word"})


def window_variant(wield: dict) -> str:
    """The window-control variant's name (``wield-window10``) for config section ``wield``."""
    return f"wield-window{wield['window_control']['window']}"


def variants(wield: dict) -> list[str]:
    """Every variant name of config section ``wield``."""
    return ["wield", window_variant(wield), "wield-wordtarget", "cbow-caption", "imginput-caption", "imginput-word"]


def grids(wield: dict) -> dict[str, tuple[str, list[float]]]:
    """Every trained grid of config section ``wield``: variant -> (its parameter, its values), the
    runs the tables read (``workflow/rules/common.smk``: ``runs``); ``wield.train_jobs: grid``
    trains each in one job."""
    out = {"wield": ("gamma", list(wield["gammas"]))}
    if wield["window_control"]["enabled"]:
        out[window_variant(wield)] = ("gamma", list(wield["window_control"]["gammas"]))
    if wield["controls"]["word_targets"]:  # gamma 0 ignores the image target: that run is wield/gamma-0
        out["wield-wordtarget"] = ("gamma", [g for g in wield["gammas"] if g > 0])
    if wield["controls"]["caption_window"]:
        out["cbow-caption"] = ("gamma", [0])
    if wield["image_input"]["enabled"]:
        out.update({f"imginput-{i}": ("lambda", list(wield["image_input"]["lambdas"]))
                    for i in wield["image_input"]["inputs"]})
    return {v: g for v, g in out.items() if g[1]}


def variant_settings(variant: str, value: float | str, wield: dict) -> dict:
    """The stage options (``python -m groundwords.studies.wield.stage``) that make a run of
    ``variant`` at grid value ``value`` (γ, or λ for the imginput variants), beside config section
    ``wield``: ``window``, ``gamma``, and ``model``/``lam``/``image_input`` or ``image_target``."""
    if variant not in variants(wield):
        raise ValueError(f"unknown WIELD variant {variant!r}; known: {', '.join(variants(wield))}")
    v = float(value)
    window = wield["window"]
    if variant == window_variant(wield):
        window = wield["window_control"]["window"]
    elif variant == "cbow-caption":
        window = CAPTION_WINDOW
    out: dict = {"window": window}
    if variant.startswith("imginput"):
        out.update(model="imginput", lam=v, image_input=variant.split("-")[1], gamma=0, engine="torch")  # numba: WIELD only
    else:
        out["gamma"] = v
    if variant == "wield-wordtarget":
        out["image_target"] = "word"
    return out


def train_flags(variant: str, value: float | str, wield: dict) -> str:
    """:func:`variant_settings` as command-line options."""
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in variant_settings(variant, value, wield).items())


def train_images(subset: str, variant: str) -> str:
    """The image features a run of ``variant`` trains on: per word or per caption image."""
    if variant in WORD_KEYED:
        return f"results/{subset}/word_images_pca.h5"
    return f"results/{subset}/encodings_pca.h5"
