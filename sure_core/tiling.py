"""Windows on the target grid: tiles with a halo, and training crops spread over a scene.

All edges lie on multiples of `step` target pixels (the coarsest resolution ratio: 6 for Sentinel-2 with
60 m bands), so every window maps to whole pixels of every input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A pixel window: column/row offset and size, in pixels of some grid (the target grid in the core)."""

    col: int
    row: int
    width: int
    height: int

    def shifted(self, dcol: int, drow: int) -> Window:
        return Window(self.col + dcol, self.row + drow, self.width, self.height)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)


@dataclass(frozen=True)
class Tile:
    read: Window      # what is read and fused (core + halo, clipped to the area)
    core: Window      # what is kept and written
    index: int
    count: int

    def core_in_read(self) -> tuple[slice, slice]:
        """Rows and columns of the core inside the read window."""
        r = self.core.row - self.read.row
        c = self.core.col - self.read.col
        return slice(r, r + self.core.height), slice(c, c + self.core.width)


#: the pseudo-tile under which 'scene' training reports its iterations (before the tiles report, once each)
TRAINING_STAGE = Tile(Window(0, 0, 0, 0), Window(0, 0, 0, 0), 0, 1)


def round_up(value: int, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _edges(length: int, tile: int, step: int) -> list[int]:
    """Tile edges over [0, length): n = ⌈length / tile⌉ pieces of about length / n, edges on multiples of `step`.
    Spreading the part of `length` beyond whole steps over all pieces keeps the last piece from growing past
    `tile` (a full S2 tile with 240 px steps: a 1380 px last tile before, which set the peak memory)."""
    if tile <= 0 or tile >= length:
        return [0, length]
    n = math.ceil(length / tile)
    return [min(length, int(round(i * length / n / step)) * step) for i in range(n)] + [length]


def plan_tiles(area: Window, tile_size: int = 0, overlap: int = 0, step: int = 6, align: int = 0) -> list[Tile]:
    """Tiles covering `area` (whose edges lie on the `step` grid). tile_size 0: one tile, the whole area.

    `align` > 0 puts the inner tile edges on multiples of lcm(step, align) from the area's origin, e.g. the
    output file's block size, so that every tile writes whole blocks (which can then leave the cache)."""
    edge_step = math.lcm(step, align) if align > 0 else step
    tile = round_up(tile_size, edge_step) if tile_size > 0 else 0
    halo = round_up(overlap, step) if overlap > 0 else 0
    cols, rows = _edges(area.width, tile, edge_step), _edges(area.height, tile, edge_step)
    spans = [(r0, r1, c0, c1) for r0, r1 in zip(rows, rows[1:]) for c0, c1 in zip(cols, cols[1:])]
    tiles = []
    for i, (r0, r1, c0, c1) in enumerate(spans):
        core = Window(area.col + c0, area.row + r0, c1 - c0, r1 - r0)
        rr0, rr1 = max(0, r0 - halo), min(area.height, r1 + halo)
        cc0, cc1 = max(0, c0 - halo), min(area.width, c1 + halo)
        read = Window(area.col + cc0, area.row + rr0, cc1 - cc0, rr1 - rr0)
        tiles.append(Tile(read, core, i, len(spans)))
    return tiles


def plan_crops(area: Window, count: int, size: int, step: int = 6) -> list[Window]:
    """`count` training crops of size×size (clipped to the area) whose centres spread evenly over `area`:
    a near-square grid of cells, one crop centred in each of the first `count` cells in a scattered order."""
    size = min(round_up(size, step), area.width - area.width % step, area.height - area.height % step)
    across = max(1, math.ceil(math.sqrt(count * area.width / max(area.height, 1))))
    down = max(1, math.ceil(count / across))
    cells = [(i, j) for i in range(down) for j in range(across)]
    cells = cells[::2] + cells[1::2]  # a checkerboard order spreads a partial set over the whole scene
    crops = []
    for i, j in cells[:count]:
        centre_row = area.row + (i + 0.5) * area.height / down
        centre_col = area.col + (j + 0.5) * area.width / across
        row = min(max(area.row, int(round((centre_row - size / 2) / step)) * step), area.row + area.height - size)
        col = min(max(area.col, int(round((centre_col - size / 2) / step)) * step), area.col + area.width - size)
        crops.append(Window(col, row, size, size))
    return list(dict.fromkeys(crops))  # a small scene may give the same crop twice
