"""dSprites (Matthey et al., 2017) drawn from its factors' definitions: every combination of 3 shapes,
6 scales, 40 orientations and 32 x 32 positions, once, as binary 64 x 64 images, in the released
file's order (position y varies fastest, then x, orientation, scale, shape).

The factors' values are the released ones: scales ``linspace(0.5, 1, 6)``, orientations
``linspace(0, 2 pi, 40)`` (both ends: the first and last are the same turn), positions
``linspace(0, 1, 32)``. How a factor becomes pixels is this module's own definition, written below,
since the released file states none: where a sprite's pixels may differ from it, they differ here
(the extent of each shape, the margin its positions keep from the border, the heart's outline).

Geometry, in image units (the image spans [0, 1] on each axis; a pixel is in a sprite when its
centre is):
- a position ``p`` puts the sprite's centre of area at ``0.25 + 0.5 p`` (a step of about a pixel),
  so that the largest sprite, turned any way, stays clear of the border;
- at scale 1, the square's side is 0.3, the ellipse's axes 0.3 and 0.15, and the heart (the curve
  ``(x^2 + y^2 - 1)^3 = x^2 y^3``) has the square's area; a scale ``s`` multiplies every length by it;
- an orientation turns the sprite counter-clockwise about its centre of area, as drawn (y down).
"""

import functools
import math

import torch

VERSION = 1  # a new number whenever the drawing changes: a cache of another is not used
SIZE = 64
SHAPES = ("square", "ellipse", "heart")
SCALES = torch.linspace(0.5, 1.0, 6, dtype=torch.float64)
ORIENTATIONS = torch.linspace(0.0, 2 * math.pi, 40, dtype=torch.float64)
POSITIONS = torch.linspace(0.0, 1.0, 32, dtype=torch.float64)
FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
FACTOR_SIZES = (len(SHAPES), len(SCALES), len(ORIENTATIONS), len(POSITIONS), len(POSITIONS))
COUNT = math.prod(FACTOR_SIZES)  # 737,280

SIDE = 0.3  # the square's side at scale 1
MARGIN = 0.25  # where position 0 puts a centre; position 1 puts it at 1 - MARGIN
# The heart curve's own area and centre of area (its dip makes it sit above the origin), found once
# on a fine grid: the heart is drawn shifted by the centre and shrunk to the square's area.
_HEART_GRID = 4001


@functools.cache
def _heart_moments() -> tuple[float, float]:
    """(area, centre of area's y) of ``(x^2 + y^2 - 1)^3 <= x^2 y^3``, on a fine grid."""
    axis = torch.linspace(-1.5, 1.5, _HEART_GRID, dtype=torch.float64)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    inside = _inside_heart_curve(x, y)
    cell = (axis[1] - axis[0]).item() ** 2
    return inside.sum().item() * cell, y[inside].mean().item()


def _inside_heart_curve(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x * x + y * y - 1) ** 3 <= x * x * y ** 3


def area(shape: int, scale: float) -> float:
    """A sprite's area in image units (the image's is 1)."""
    side = SIDE * scale
    return math.pi * (side / 2) * (side / 4) if SHAPES[shape] == "ellipse" else side * side


def centre(position: float) -> float:
    return MARGIN + (1 - 2 * MARGIN) * position


def inside(shape: int, u: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Whether the points (u, v), in image units from the sprite's centre of area and already turned
    into the sprite's own frame (v pointing up), are in the shape at ``scale``."""
    half = SIDE * scale / 2
    name = SHAPES[shape]
    if name == "square":
        return (u.abs() <= half) & (v.abs() <= half)
    if name == "ellipse":
        return (u / half) ** 2 + (v / (half / 2)) ** 2 <= 1
    heart_area, heart_y = _heart_moments()
    stretch = math.sqrt(heart_area) / (2 * half)  # curve units per image unit
    return _inside_heart_curve(u * stretch, v * stretch + heart_y)


def factors_of(index: torch.Tensor) -> torch.Tensor:
    """int64 [N, 5]: each image's factor classes (shape, scale, orientation, x, y) from its index."""
    found, rest = [], index.long()
    for size in reversed(FACTOR_SIZES):
        found.append(rest % size)
        rest = rest // size
    return torch.stack(found[::-1], dim=1)


def draw(shape: int, scale: int, orientation: int) -> torch.Tensor:
    """uint8 [32, 32, 64, 64] (x, y, then pixel rows and columns; 0 or 255): the sprite at every
    position for one shape, scale and orientation (factor classes)."""
    pixel = (torch.arange(SIZE, dtype=torch.float64) + 0.5) / SIZE
    centres = centre(POSITIONS)
    dx = (pixel[None, :] - centres[:, None])[:, None, None, :]  # [x, 1, 1, column]
    dy = (pixel[None, :] - centres[:, None])[None, :, :, None]  # [1, y, row, 1]
    turn = ORIENTATIONS[orientation].item()
    cos, sin = math.cos(turn), math.sin(turn)
    # Into the sprite's frame: up is -row; turning the sprite by +turn is turning the points by -turn.
    u = dx * cos - dy * sin
    v = -(dx * sin + dy * cos)
    return inside(shape, u, v, SCALES[scale].item()).to(torch.uint8) * 255


@functools.cache
def images() -> torch.Tensor:
    """uint8 [737280, 1, 64, 64]: every sprite, in the released file's order. Drawn once per process
    (about a minute on two cores) and kept: 3 GB."""
    out = torch.empty(COUNT, 1, SIZE, SIZE, dtype=torch.uint8)
    per_draw = len(POSITIONS) ** 2
    for start in range(0, COUNT, per_draw):
        shape, scale, orientation = factors_of(torch.tensor([start]))[0, :3].tolist()
        out[start:start + per_draw, 0] = draw(shape, scale, orientation).flatten(0, 1)
    return out
