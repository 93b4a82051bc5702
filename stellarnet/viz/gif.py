"""Animated GIFs drawn fast: the still part of a figure is rendered once, and each frame
redraws only the artists that move, on that one figure, written with Pillow directly.

matplotlib's ``FuncAnimation`` + ``PillowWriter`` saves every frame with ``savefig``: a new
Agg canvas and renderer per frame, a full redraw of every axis, tick and label, and every
mathtext label parsed again (matplotlib's parse cache is per renderer). For the network
diagram that was ~0.15 s a frame. Here the figure keeps one Agg canvas and renderer; the
background (everything that does not move) is drawn once and copied back before each frame,
and only the moving artists are drawn over it in their order, so a frame costs a few
milliseconds and looks as a full redraw would (the moving artists are drawn after, not
between, the still ones: they must not lie under still artists that they overlap).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from stellarnet.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure
    from PIL.Image import Image

Frame = TypeVar("Frame")


def blit_frames(
    fig: Figure,
    moving: Sequence[Artist],
    frames: Iterable[Frame],
    update: Callable[[Frame], None],
    above: Sequence[Artist] = (),
) -> Iterator[Image]:
    """Render ``fig`` once without the ``moving`` artists, then yield one RGBA image per
    frame: ``update(frame)`` changes the moving artists (colours, widths, data, text), which
    are drawn over a copy of the background in the order given.

    ``above`` are still artists that lie over moving ones (labels over the edges of the
    network): they are rendered once onto a transparent layer, composited over each frame.
    The figure's layout must be fixed beforehand (e.g. ``fig.draw_without_rendering()`` then
    ``fig.set_layout_engine("none")``): nothing is laid out again per frame.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)  # one canvas, so one renderer and its text caches
    for artist in (*moving, *above):
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    renderer = canvas.get_renderer()
    size = canvas.get_width_height()

    def image() -> Image.Image:
        return Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)

    overlay = None
    if above:
        renderer.clear()  # transparent
        for artist in above:
            artist.draw(renderer)
        overlay = image().copy()
    for frame in frames:
        update(frame)
        canvas.restore_region(background)
        for artist in moving:
            artist.draw(renderer)
        rgba = image() if overlay is None else Image.alpha_composite(image(), overlay)
        yield rgba.copy() if overlay is None else rgba


def save_gif(images: Iterable[Image], path: Path, fps: float) -> Path:
    """Write ``images`` as a looping GIF at ``fps`` frames per second, atomically.

    Every frame is mapped, without dithering, to one 256-colour palette chosen (maximum
    coverage) from the first, middle and last frames: exact for the white background and
    within a few levels elsewhere, and a tenth of the time of a palette per frame.
    """
    from PIL import Image

    images = list(images)
    if not images:
        raise ValueError(f"no frames to write to {path}")
    width, height = images[0].size
    sample_frames = [images[0], images[len(images) // 2], images[-1]]
    sample = Image.new("RGB", (width, height * len(sample_frames)))
    for k, frame in enumerate(sample_frames):
        sample.paste(frame.convert("RGB"), (0, height * k))
    palette = sample.quantize(256, method=Image.Quantize.MAXCOVERAGE)
    frames = [
        image.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE) for image in images
    ]

    def write(tmp: Path) -> None:
        gif = tmp.with_suffix(".gif")  # Pillow picks the format from the suffix
        try:
            frames[0].save(
                gif, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0
            )
            os.replace(gif, tmp)
        finally:
            gif.unlink(missing_ok=True)

    return atomic_write(path, write)
