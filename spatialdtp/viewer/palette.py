"""The viewer's colours, in one place, so that a curve has the colour of its layer.

Okabe & Ito's colour-blind-safe set (Okabe & Ito 2008, "Color Universal Design";
https://jfly.uni-koeln.de/color/) but for R and S: the tumour cells sit on the blue–yellow
axis, the one red–green colour blindness keeps, and their additive mixtures on napari's
black canvas stay on it. P is Okabe–Ito yellow; R is the blue opposite it on the hue circle
(Okabe–Ito's own blue, 202°, mixes with yellow into green, the CAF hue); S is Paul Tol's
grey. So P + R and P + S only desaturate towards grey and never take the hue of the niche
and vessel outlines, which sit off that axis: CAF bluish green (164°), TAM vermillion
(26°), vessels reddish purple (327°), all Okabe–Ito. Layers (napari) and plots
(matplotlib) both take their colours from here; nothing else in the viewer spells a colour
of a cell type, a niche or the vessels. On the plots' white axes the light ones (P's
yellow, S's grey) are drawn with a dark edge (:func:`curve`), so they keep their layer's
colour and can still be seen.
"""
from __future__ import annotations

BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"
GREY = "#999999"

#: cell type (field name) -> colour; burden is S + P + R
CELL_COLOURS = {"S": "#bbbbbb",       # grey (Tol's grey)
                "P": YELLOW,          # 56°
                "R": "#465aff",       # blue, 236°: the complement of P's hue
                "F": BLUISH_GREEN,    # the CAF niche hue
                "M": VERMILLION,      # the TAM niche hue
                "burden": BLACK}
#: niche kinds of :mod:`spatialdtp.viewer.maps` (CAF niche: F >= M; TAM niche: M > F)
CAF_NICHE_COLOUR = BLUISH_GREEN       # 164°
TAM_NICHE_COLOUR = VERMILLION         # 26°
VESSEL_COLOUR = REDDISH_PURPLE        # 327°
#: drugs in the order of the run's treatment: shading of on-periods and plasma curves
#: (blue first, then colours no cell type uses)
DRUG_COLOURS = (BLUE, GREY, "#332288", "#882255", "#117733", "#44AA99")
#: the niche contrast's curve, and the near/far zones of the niche profile
CONTRAST_COLOUR = BLUE
NEAR_COLOUR = BLUISH_GREEN      # near the niches: the niche colour
FAR_COLOUR = GREY


def drug_colour(i: int) -> str:
    """The colour of the ``i``-th drug of a run."""
    return DRUG_COLOURS[i % len(DRUG_COLOURS)]


def _luminance(colour: str) -> float:
    r, g, b = (int(colour.lstrip("#")[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def curve(colour: str) -> dict:
    """matplotlib keywords for a curve of ``colour`` on white axes: a light colour (luma
    above 0.6 from its sRGB components: P's yellow 0.86, S's grey 0.73) gets a dark edge."""
    if _luminance(colour) <= 0.6:
        return {"color": colour}
    from matplotlib import patheffects

    return {"color": colour,
            "path_effects": [patheffects.withStroke(linewidth=3.2, foreground="0.3"),
                             patheffects.Normal()]}
