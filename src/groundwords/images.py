"""Image helpers shared by the fetch and encode stages."""

from __future__ import annotations

from PIL import Image

#: what transparent pixels become: vision models' preprocessing expects an opaque image, and
#: dropping the alpha channel would leave whatever colour the transparent pixels happen to hold
BACKGROUND = (255, 255, 255)


def has_alpha(im: Image.Image) -> bool:
    """True for an image with an alpha channel or a transparent colour (``tRNS``, GIF index)."""
    return im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as RGB; transparent images (RGBA/LA, palette or colour-key transparency) are
    composited onto a white background first."""
    if not has_alpha(im):
        return im.convert("RGB")
    rgba = im.convert("RGBA")
    out = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    out.alpha_composite(rgba)
    return out.convert("RGB")
