"""Tiles with a halo and training crops: the core's planning (`sure_core.tiling`), used as it is by the plugin.

Each tile is read with a halo and only its core is written, which hides the seams; edges lie on the coarsest
grid (multiples of 6 or 2 px at 10 m for Sentinel-2, of the ratio for a pair). Importing it does not import torch.
"""
from .core_loader import core_module

_tiling = core_module("tiling")
Tile = _tiling.Tile
Window = _tiling.Window
plan_tiles = _tiling.plan_tiles
plan_crops = _tiling.plan_crops

__all__ = ["Tile", "Window", "plan_crops", "plan_tiles"]
