"""Split the processed window into tiles with a halo, on the coarsest grid (multiples of 6 or 2 px at 10 m).

Each tile is sharpened on its own (its own small network), so memory stays bounded on large areas; the
halo gives the network context at tile borders and is cut away before writing, which hides the seams.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .raster_io import Window


@dataclass(frozen=True)
class Tile:
    read: Window      # what is read and sharpened (core + halo, clipped to the area), 10 m px of the input grid
    core: Window      # what is written, same coordinates
    index: int
    count: int

    def core_in_read(self) -> tuple[slice, slice]:
        """Rows and columns of the core inside the sharpened read window."""
        r = self.core.row - self.read.row
        c = self.core.col - self.read.col
        return slice(r, r + self.core.height), slice(c, c + self.core.width)


def _round_up(value: int, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _edges(length: int, tile: int, step: int) -> list[int]:
    """Tile edges over [0, length): about `tile` long, even, on multiples of `step`."""
    if tile <= 0 or tile >= length:
        return [0, length]
    n = math.ceil(length / tile)
    cells = length // step
    return [min(length, int(round(i * cells / n)) * step) for i in range(n)] + [length]


def plan_tiles(area: Window, tile_size: int = 0, overlap: int = 0, step: int = 6) -> list[Tile]:
    """Tiles covering `area` (whose edges lie on the `step` grid). tile_size 0: one tile, the whole area."""
    tile = _round_up(tile_size, step) if tile_size > 0 else 0
    halo = _round_up(overlap, step) if overlap > 0 else 0
    cols, rows = _edges(area.width, tile, step), _edges(area.height, tile, step)
    spans = [(r0, r1, c0, c1) for r0, r1 in zip(rows, rows[1:]) for c0, c1 in zip(cols, cols[1:])]
    tiles = []
    for i, (r0, r1, c0, c1) in enumerate(spans):
        core = Window(area.col + c0, area.row + r0, c1 - c0, r1 - r0)
        rr0, rr1 = max(0, r0 - halo), min(area.height, r1 + halo)
        cc0, cc1 = max(0, c0 - halo), min(area.width, c1 + halo)
        read = Window(area.col + cc0, area.row + rr0, cc1 - cc0, rr1 - rr0)
        tiles.append(Tile(read, core, i, len(spans)))
    return tiles
