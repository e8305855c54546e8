"""Random-color MNIST: every digit tinted with its own color, computed in tensor ops.

The tint of image ``i`` of a split is a pure function of ``(seed, split, i)``: a 32-bit integer hash
of those three numbers gives the hue, saturation and value. It does not depend on how many images are
loaded, on their order or on the device, so the same sample has the same color in every run.
Saturation and value are kept high so that every digit stays visible on the black background.
"""

import torch

SPLIT_IDS = {"train": 1, "test": 2}
_MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A well-mixed 32-bit integer hash (Wellons' "lowbias32"), elementwise on int64 tensors.

    The products of two 32-bit numbers may exceed int64's range; they wrap in two's complement and
    masking keeps exactly the low 32 bits, as the hash is defined.
    """
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniform_from(seed: int, split: str, index: torch.Tensor, stream: int) -> torch.Tensor:
    """A number in [0, 1) for each index, fixed by (seed, split, index, stream)."""
    key = hash32(torch.full_like(index, seed) * 4 + SPLIT_IDS[split])
    key = hash32(key + stream * 0x9E3779B9)
    return hash32(key ^ index).double() / 2.0**32


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """[..., 3] hue, saturation, value in [0, 1] to RGB in [0, 1]."""
    h, s, v = hsv.unbind(-1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device)
    k = (n + h.unsqueeze(-1) * 6) % 6
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * ramp


def sample_tints(seed: int, split: str, index: torch.Tensor, hue_bins: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB tint [N, 3] (float32) and hue-bin label [N] (int64) for the given image indices."""
    index = index.long().cpu()
    hue = uniform_from(seed, split, index, stream=0)
    saturation = 0.6 + 0.4 * uniform_from(seed, split, index, stream=1)
    value = 0.75 + 0.25 * uniform_from(seed, split, index, stream=2)
    rgb = hsv_to_rgb(torch.stack([hue, saturation, value], dim=-1)).float()
    return rgb, (hue * hue_bins).long().clamp_max(hue_bins - 1)


def tint(images: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """Grey uint8 images [N, H, W] times their tint [N, 3]: uint8 [N, 3, H, W]."""
    colored = images.unsqueeze(1).float() * rgb[:, :, None, None]
    return colored.round_().clamp_(0, 255).to(torch.uint8)
