"""Which latent coordinate controls what, as numbers beside the traversal figure.

A traversal sweeps one coordinate of a code with the rest fixed: a Gaussian dimension over
``TRAVERSAL_VALUES``, a categorical variable over each of its categories. For every coordinate, from
the codes of a set of test images, two numbers: how far the decoded image's hue moves (degrees, on
color_mnist) and how often the digit that the reference classifier reads in it changes. seeds/000's
claim that some coordinates set the color and others the digit is then a table, and its best
coordinates are named in the metrics.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from vae_lab.data import ImageSet
from vae_lab.metrics.reference import ReferenceClassifier

TRAVERSAL_VALUES = torch.linspace(-2, 2, 9)  # seeds/000 traverses each coordinate over (-2, 2)
# Below this chroma (largest minus smallest channel of the stroke's mean color) an image is grey and
# has no hue. The dataset's tints have chroma (saturation * value) of at least 0.45, times the
# stroke's mean brightness (about 0.8 on MNIST's anti-aliased strokes).
ACHROMATIC = 0.1
# Codes decoded at once. A categorical variable of 65 categories sweeps 16,640 codes; a few hundred
# images' activations stay in a CPU's cache (benchmarks/reference_pieces.py measures the same effect).
DECODE_PIECE = 256


@dataclass(frozen=True)
class Coordinate:
    """One swept coordinate: ``z<d>`` a Gaussian dimension, ``c<v>`` a categorical variable (1-based,
    as the traversal figure labels them)."""

    name: str
    start: int  # its first column in the code
    categories: int = 0  # 0 for a Gaussian dimension

    def sweep(self, base: torch.Tensor) -> torch.Tensor:
        """[B, C] codes to [B, P, C]: each code with this coordinate set to each of P positions."""
        positions = self.categories or len(TRAVERSAL_VALUES)
        codes = base.unsqueeze(1).repeat(1, positions, 1)
        if self.categories:
            codes[:, :, self.start:self.start + self.categories] = torch.eye(self.categories, dtype=base.dtype)
        else:
            codes[:, :, self.start] = TRAVERSAL_VALUES.to(base.dtype)
        return codes


def coordinates(spec) -> list[Coordinate]:
    """Every coordinate of a code laid out as ``spec`` says: Gaussian dimensions, then categorical
    variables."""
    found = [Coordinate(f"z{d + 1}", d) for d in range(spec.continuous)]
    offset, variables = spec.continuous, 0
    for n_vars, n_cats in spec.discrete:
        for _ in range(n_vars):
            variables += 1
            found.append(Coordinate(f"c{variables}", offset, n_cats))
            offset += n_cats
    return found


def discretised(code: torch.Tensor, spec) -> torch.Tensor:
    """Categorical blocks of a code made one-hot at their most likely category (a code the prior could
    draw), the Gaussian part left as it is."""
    code, offset = code.clone(), spec.continuous
    for n_vars, n_cats in spec.discrete:
        block = code[:, offset:offset + n_vars * n_cats].view(-1, n_vars, n_cats)
        code[:, offset:offset + n_vars * n_cats] = F.one_hot(block.argmax(-1), n_cats).to(code.dtype).flatten(1)
        offset += n_vars * n_cats
    return code


def stroke_hue(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HSV hue (degrees in [0, 360)) and chroma of each RGB image's stroke color: the mean color of
    its pixels weighted by their brightness (largest channel), so the black background does not count."""
    weight = images.amax(-3, keepdim=True)
    color = (images * weight).sum((-2, -1)) / weight.sum((-2, -1)).clamp_min(1e-8)  # [..., 3]
    r, g, b = color.unbind(-1)
    top, bottom = color.amax(-1), color.amin(-1)
    chroma = top - bottom
    safe = chroma.clamp_min(1e-8)
    sector = torch.where(top == r, ((g - b) / safe) % 6,
                         torch.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return (60 * sector) % 360, chroma


def hue_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Degrees between two hues the short way round the circle, in [0, 180]."""
    d = (a - b).abs() % 360
    return torch.minimum(d, 360 - d)


@dataclass(frozen=True)
class Looks:
    """What traversal control reads off images [..., C, H, W]: the digit the reference classifier
    sees, and on color images the stroke's hue and chroma."""

    digits: torch.Tensor
    hue: Optional[torch.Tensor] = None
    chroma: Optional[torch.Tensor] = None

    @classmethod
    def of(cls, images: torch.Tensor, reference: ReferenceClassifier, color: bool,
           precision: str = "fp32") -> "Looks":
        digits = reference.digits(images.flatten(0, -4), precision).view(images.shape[:-3])
        return cls(digits, *stroke_hue(images)) if color else cls(digits)


def changes(base: Looks, swept: Looks) -> dict[str, float]:
    """``digit_change``: how often the classified digit of a swept image differs from that of its
    unswept image. ``hue_change`` (color images): the mean hue distance between them, a pair where
    either image is grey counting as no change (a coordinate that draws grey sets no hue).
    ``base`` of [B, ...] images, ``swept`` of [B, P, ...]."""
    found = {"digit_change": (swept.digits != base.digits.unsqueeze(1)).float().mean().item()}
    if base.hue is not None:
        chromatic = (swept.chroma >= ACHROMATIC) & (base.chroma >= ACHROMATIC).unsqueeze(1)
        found["hue_change"] = (hue_distance(swept.hue, base.hue.unsqueeze(1)) * chromatic).mean().item()
    return found


@torch.no_grad()
def traversal_control(model, reference: ReferenceClassifier, test: ImageSet, n_images: int = 256,
                      decode_piece: int = DECODE_PIECE, precision: str = "fp32") -> dict:
    """For every coordinate, how much sweeping it changes the hue and the digit (:func:`changes`),
    from the codes of the first ``n_images`` test images; and the coordinate that changes each most,
    with how much it changes the other (a coordinate that sets the color alone changes no digit).
    On grey images only the digit is measured. ``decode_piece``: codes decoded at once; ``precision``:
    the reference classifier's (:meth:`ReferenceClassifier.digits`: the same digits either way)."""
    spec, color = model.spec, test.images.shape[1] == 3
    images = test.batch(torch.arange(min(n_images, len(test)), device=test.device)).images
    base = discretised(model.embed(images).float(), spec)
    unswept = Looks.of(model.decode(base), reference, color, precision)
    table = {}
    for coordinate in coordinates(spec):
        codes = coordinate.sweep(base)
        swept = torch.cat([model.decode(piece) for piece in codes.flatten(0, 1).split(decode_piece)])
        swept = swept.unflatten(0, codes.shape[:2])
        table[coordinate.name] = changes(unswept, Looks.of(swept, reference, color, precision))
    metrics: dict = {"traversal_control": table}
    for quantity, other in (("hue", "digit"), ("digit", "hue")):
        if quantity == "hue" and not color:
            continue
        best = max(table, key=lambda name: table[name][f"{quantity}_change"])
        metrics[f"{quantity}_control"] = table[best][f"{quantity}_change"]
        metrics[f"{quantity}_control_by"] = best
        if color:
            metrics[f"{quantity}_control_{other}_change"] = table[best][f"{other}_change"]
    return metrics
