"""Output files of the ``lrlab`` command: checked before any work starts, written whole.

An image option (``-o`` of ``lrlab schedules plot``, ``--plot`` of ``lrlab refine``) takes a
file path whose suffix chooses the format (``.png``, ``.pdf``, ``.svg``, ...); a path without a
suffix gets ``.png``, and the command prints the path it wrote. An existing folder is refused
(give a file name in it), as is a file in a folder that does not exist. Every file is written
through a temporary file in its folder, then renamed (``lrlab._io.atomic_write``).
"""

from __future__ import annotations

import os

from lrlab._io import atomic_write, check_output_file

IMAGE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def image_path(flag: str, value: str) -> tuple[str, str]:
    """``(path, format)`` of an image option: ``.png`` added when the path has no suffix."""
    if os.path.isdir(value):
        example = os.path.join(value, "plot.png")
        raise ValueError(f"{flag} {value!r} is a folder; give a file name, e.g. {example}")
    root, ext = os.path.splitext(value)
    fmt = ext[1:].lower()
    if not ext:
        value, fmt = value + ".png", "png"
    elif fmt not in IMAGE_FORMATS:
        raise ValueError(
            f"{flag} {value!r}: unknown image format {ext!r}; use one of "
            + ", ".join("." + f for f in IMAGE_FORMATS)
        )
    return check_output_file(value, flag), fmt


def output_file(flag: str, value: str, suffix: str) -> str:
    """A data file option (e.g. ``.json``): ``suffix`` added when the path has none."""
    if os.path.isdir(value):
        example = os.path.join(value, "out" + suffix)
        raise ValueError(f"{flag} {value!r} is a folder; give a file name, e.g. {example}")
    if not os.path.splitext(value)[1]:
        value += suffix
    return check_output_file(value, flag)


def save_figure(fig, path: str, fmt: str, dpi: int = 110) -> str:
    """Write a Matplotlib figure to ``path`` whole (temporary file, then renamed)."""
    return atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
