"""The viewer's colours, in one place, so that a curve has the colour of its layer.

The Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"): eight colours that
stay distinct under the common colour-vision deficiencies. Layers (napari, black canvas)
and plots (matplotlib, white axes) both take their colours from here; nothing else in the
viewer should spell a colour of a cell type, a niche or the vessels.

P is orange rather than yellow because the plots are drawn on white, where yellow is
nearly invisible; yellow goes to the TAMs, which are never a curve.
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
CELL_COLOURS = {"S": SKY_BLUE, "P": ORANGE, "R": REDDISH_PURPLE, "F": BLUISH_GREEN,
                "M": YELLOW, "burden": BLACK}
#: niche kinds of :mod:`spatialdtp.viewer.maps` (CAF niche: F >= M; TAM niche: M > F)
CAF_NICHE_COLOUR = BLUISH_GREEN
TAM_NICHE_COLOUR = YELLOW
VESSEL_COLOUR = VERMILLION
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
