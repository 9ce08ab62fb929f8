"""Pictures of predictions, written to PNG with matplotlib's object-oriented API.

Figures are ``matplotlib.figure.Figure`` objects with an Agg canvas of their own
(:func:`agg_figure`), never pyplot's: no backend is selected and no global figure state is
kept, so importing condflow leaves the user's matplotlib (e.g. a notebook's inline backend)
as it was.
"""

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["agg_figure"]


def agg_figure(**kwargs: Any) -> Figure:
    """``Figure(**kwargs)`` drawn by Agg (``savefig`` to PNG, ``canvas.draw()``), outside
    pyplot: nothing to close."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig
