"""Encoder and decoder trunks, for images of any channel count.

A backbone builds two modules: an encoder trunk from images [B, C, H, W] to features
[B, ``out_features``], and a decoder trunk from a code [B, code_size] to pixel logits [B, C, H, W].
The latent's head (a linear layer from features to posterior parameters) belongs to the model.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vae_lab.config import BackboneConfig, ConfigError, Registry, at_least, positive_ints

BACKBONES: Registry[type] = Registry("backbone")

ImageShape = tuple[int, int, int]


class Dense(nn.Module):
    """A fully connected layer, ``x @ weight + bias``, with its weight stored [in, out].

    The same layer as nn.Linear (initialised from the same random draws, so a model starts from the
    same weights), stored transposed: under torch.func.vmap, which stacks the members of a population
    (vae_lab/population.py), nn.Linear's [out, in] weight is copied into a transposed layout at every
    use, and this one is read as it is (measured: a third more images/s for 12 stacked MLPs). A
    checkpoint of nn.Linear's layout (runs made before this layer) is transposed when loaded."""

    _version = 2  # 1: the weight was saved [out, in], by nn.Linear

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        linear = nn.Linear(in_features, out_features, bias=bias)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(linear.weight.detach().t().contiguous())
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight
        return out + self.bias if self.bias is not None else out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        key = prefix + "weight"
        if local_metadata.get("version", 1) < 2 and key in state_dict:
            state_dict[key] = state_dict[key].t()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Encoder(nn.Sequential):
    def __init__(self, *layers: nn.Module, out_features: int):
        super().__init__(*layers)
        self.out_features = out_features


@dataclass
class MLPConfig(BackboneConfig):
    hidden: list[int] = positive_ints()  # encoder widths, input side first; the decoder mirrors them


@BACKBONES.register("mlp", MLPConfig)
class MLP:
    """Fully connected trunks; ``hidden=[400]`` with a 20-d latent is the classic 784-400-20 VAE."""

    def __init__(self, config: MLPConfig):
        self.hidden = list(config.hidden)

    def encoder(self, image_shape: ImageShape) -> Encoder:
        widths = [math.prod(image_shape), *self.hidden]
        return Encoder(nn.Flatten(), *_dense_stack(widths), out_features=widths[-1])

    def decoder(self, code_size: int, image_shape: ImageShape) -> nn.Module:
        widths = [code_size, *reversed(self.hidden)]
        return nn.Sequential(*_dense_stack(widths), Dense(widths[-1], math.prod(image_shape), bias=False),
                             nn.Unflatten(1, image_shape), PixelBias(image_shape))


@dataclass
class ConvConfig(BackboneConfig):
    channels: list[int] = positive_ints()  # one stride-2 convolution per entry, input side first
    hidden: int = at_least(1)  # dense layer between the feature map and the latent
    tint: bool = False  # draw each color channel as the shape times a tint the code sets (TintedDecoder)


@BACKBONES.register("conv", ConvConfig)
class Conv:
    """Stride-2 ``Conv2d`` encoder; mirrored ``ConvTranspose2d`` decoder that restores the exact size."""

    def __init__(self, config: ConvConfig):
        self.channels, self.hidden, self.tint = list(config.channels), config.hidden, config.tint

    def _sizes(self, image_shape: ImageShape) -> list[tuple[int, int]]:
        """Spatial size after each convolution (kernel 4, stride 2, padding 1 halves, rounding down)."""
        sizes = [image_shape[1:]]
        for _ in self.channels:
            h, w = sizes[-1]
            sizes.append((h // 2, w // 2))
        if min(sizes[-1]) < 1:
            raise ValueError(f"{len(self.channels)} stride-2 convolutions do not fit {image_shape}")
        return sizes

    def encoder(self, image_shape: ImageShape) -> Encoder:
        widths = [image_shape[0], *self.channels]
        convs = [layer for c_in, c_out in zip(widths, widths[1:])
                 for layer in (nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU())]
        h, w = self._sizes(image_shape)[-1]
        flat = widths[-1] * h * w
        return Encoder(*convs, nn.Flatten(), Dense(flat, self.hidden), nn.ReLU(),
                       out_features=self.hidden)

    def decoder(self, code_size: int, image_shape: ImageShape) -> nn.Module:
        sizes = self._sizes(image_shape)[::-1]  # smallest first
        widths = [*reversed(self.channels), image_shape[0]]
        layers: list[nn.Module] = [
            *_dense_stack([code_size, self.hidden, widths[0] * math.prod(sizes[0])]),
            nn.Unflatten(1, (widths[0], *sizes[0])),
        ]
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            (h, w), (target_h, target_w) = sizes[i], sizes[i + 1]
            # Kernel 4, stride 2, padding 1 doubles the size; output_padding adds the odd pixel back.
            padding = (target_h - 2 * h, target_w - 2 * w)
            last = i == len(self.channels) - 1
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1,
                                             output_padding=padding, bias=not last))
            layers.append(PixelBias(image_shape) if last else nn.ReLU())
        if self.tint:
            return TintedDecoder(nn.Sequential(*layers[:-1]), code_size, image_shape)
        return nn.Sequential(*layers)


class TintedDecoder(nn.Module):
    """A decoder that draws an image as a shape times a color, the way random-color MNIST is made:
    each channel's probability is sigmoid(the trunk's logits) times a tint, sigmoid(code @ W + b), that
    the code sets linearly. A black background stays black whatever the tint.

    A convolutional decoder's output layer is one kernel shared by every pixel, so on its own it can
    color a stroke only once its feature maps draw the stroke with the color in it: a product of shape
    and color it has to learn. The tint gives it that product from the first step. It matters where
    the code holds no color for KL warm-up to keep while the decoder learns it: a categorical code
    starts empty and fills with the shape the decoder can already draw (docs/findings/color.md)."""

    # Every channel starts at sigmoid(2) = 88% of the trunk's brightness: near the plain decoder, and
    # where the tint's slope is still 40% of its steepest.
    INITIAL_TINT_LOGIT = 2.0

    def __init__(self, trunk: nn.Module, code_size: int, image_shape: ImageShape):
        super().__init__()
        # Registered before the trunk: output_layer_weights takes the last matrix, the trunk's. Its
        # random weights give each category a slightly different tint to start from.
        self.tint = Dense(code_size, image_shape[0])
        nn.init.constant_(self.tint.bias, self.INITIAL_TINT_LOGIT)
        self.trunk = trunk
        self.pixel_bias = PixelBias(image_shape)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        log_tint = F.logsigmoid(self.tint(code).float())[:, :, None, None]
        log_p = F.logsigmoid(self.pixel_bias(self.trunk(code)).float()) + log_tint
        return log_p - log1mexp(log_p)  # the logits of p


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate at both ends (Maechler 2012); x is kept below -1e-30."""
    x = x.clamp(max=-1e-30)
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


@dataclass
class UNetConfig(BackboneConfig):
    channels: list[int] = positive_ints()  # feature channels per resolution, full size first; stride 2 between
    blocks: int = at_least(1)  # residual blocks per resolution, in the encoder and again in the decoder
    groups: int = at_least(1)  # GroupNorm groups: must divide every entry of channels
    heads: int = at_least(1)   # self-attention heads at the lowest resolution: must divide its channels
    hidden: int = at_least(1)  # dense layer between the lowest feature map and the latent

    def cross_check(self) -> None:
        if any(c % self.groups for c in self.channels):
            raise ConfigError("groups", self.groups, f"must divide every entry of backbone.channels {self.channels}")
        if self.channels[-1] % self.heads:
            raise ConfigError("heads", self.heads, f"must divide the lowest resolution's {self.channels[-1]} channels")


class ResidualBlock(nn.Module):
    """GroupNorm, SiLU and a 3x3 convolution, twice, added to the input (projected by a 1x1
    convolution when the width changes)."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(groups, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.GroupNorm(groups, c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention among the positions of a feature map, added to it."""

    def __init__(self, channels: int, groups: int, heads: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [B, H*W, C]
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + attended.transpose(1, 2).reshape(b, c, h, w)


class Resize(nn.Module):
    """Nearest-neighbour upsampling to an exact size, then a 3x3 convolution."""

    def __init__(self, channels: int, size: tuple[int, int]):
        super().__init__()
        self.size = size
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=self.size, mode="nearest"))


@BACKBONES.register("unet", UNetConfig)
class UNet:
    """seeds/003's U-Net-like trunks: residual blocks with GroupNorm at each resolution (down, then
    up), and a middle of residual block, self-attention, residual block at the lowest resolution.
    Unlike a U-Net there are no skips from encoder to decoder: everything the decoder knows of an
    image must pass through the latent vector."""

    def __init__(self, config: UNetConfig):
        self.channels, self.blocks, self.hidden = list(config.channels), config.blocks, config.hidden
        self.groups, self.heads = config.groups, config.heads

    def _sizes(self, image_shape: ImageShape) -> list[tuple[int, int]]:
        """Spatial size at each resolution (a 3x3, stride-2, padding-1 convolution: ceil(n / 2))."""
        sizes = [image_shape[1:]]
        for _ in self.channels[1:]:
            h, w = sizes[-1]
            sizes.append((-(-h // 2), -(-w // 2)))
        return sizes

    def _stage(self, c_in: int, c_out: int) -> list[nn.Module]:
        return [ResidualBlock(c_in if i == 0 else c_out, c_out, self.groups) for i in range(self.blocks)]

    def _middle(self) -> list[nn.Module]:
        c = self.channels[-1]
        return [ResidualBlock(c, c, self.groups), SelfAttention(c, self.groups, self.heads),
                ResidualBlock(c, c, self.groups)]

    def encoder(self, image_shape: ImageShape) -> Encoder:
        layers: list[nn.Module] = [nn.Conv2d(image_shape[0], self.channels[0], 3, padding=1)]
        widths = [self.channels[0], *self.channels]
        for level, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            layers += self._stage(c_in, c_out)
            if level < len(self.channels) - 1:
                layers.append(nn.Conv2d(c_out, c_out, 3, stride=2, padding=1))
        h, w = self._sizes(image_shape)[-1]
        layers += [*self._middle(), nn.GroupNorm(self.groups, self.channels[-1]), nn.SiLU(), nn.Flatten(),
                   Dense(self.channels[-1] * h * w, self.hidden), nn.SiLU()]
        return Encoder(*layers, out_features=self.hidden)

    def decoder(self, code_size: int, image_shape: ImageShape) -> nn.Module:
        sizes = self._sizes(image_shape)
        lowest = self.channels[-1]
        layers: list[nn.Module] = [Dense(code_size, self.hidden), nn.SiLU(),
                                   Dense(self.hidden, lowest * math.prod(sizes[-1])),
                                   nn.Unflatten(1, (lowest, *sizes[-1])), *self._middle()]
        widths = [lowest, *reversed(self.channels)]
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            layers += self._stage(c_in, c_out)
            level = len(self.channels) - 1 - i
            if level > 0:
                layers.append(Resize(c_out, sizes[level - 1]))
        layers += [nn.GroupNorm(self.groups, self.channels[0]), nn.SiLU(),
                   nn.Conv2d(self.channels[0], image_shape[0], 3, padding=1, bias=False), PixelBias(image_shape)]
        return nn.Sequential(*layers)


class PixelBias(nn.Module):
    """A learned logit offset for every channel and pixel of the image: the last step of every
    decoder. A convolution's bias is one per channel; this one lets a decoder start at the data's
    mean image (``start_at_mean_image``), where PyTorch's initialisation starts every pixel near 0.5
    on mostly black images. From 0.5 the decoder spends its first epoch learning the background with
    the code ignored (conv, grey MNIST: KL 2.7 nats after one epoch). Started per channel instead, at
    the mean tint, conv decoders on color MNIST drew grey digits for most of ten epochs in every seed
    (docs/findings/initialisation.md)."""

    def __init__(self, image_shape: ImageShape):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(image_shape))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.bias

    def start_at(self, mean_image: torch.Tensor) -> None:
        with torch.no_grad():  # clamped: no pixel starts where the sigmoid is flat
            self.bias.copy_(torch.logit(mean_image.float().clamp(0.01, 0.99)))


def _dense_stack(widths: list[int]) -> list[nn.Module]:
    """Dense + ReLU for each consecutive pair of widths."""
    return [layer for w_in, w_out in zip(widths, widths[1:]) for layer in (Dense(w_in, w_out), nn.ReLU())]


def build_backbone(config: BackboneConfig):
    return BACKBONES[config.name](config)


class PerPartEncoder(nn.Module):
    """One encoder trunk and linear head per latent part, outputting the parts' posterior parameters
    side by side (the encoders of a model whose parts share no weights)."""

    def __init__(self, trunks: list[nn.Module], param_sizes: list[int]):
        super().__init__()
        self.trunks = nn.ModuleList(trunks)
        self.heads = nn.ModuleList(Dense(t.out_features, n) for t, n in zip(trunks, param_sizes))
        self.out_features = sum(param_sizes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(trunk(images)) for trunk, head in zip(self.trunks, self.heads)], -1)


class AveragedDecoders(nn.Module):
    """Decoders side by side, each reading its own slice of the code. The image they mean together is
    the average of their images; ``forward`` returns its logits, ``each`` every decoder's own."""

    def __init__(self, decoders: list[nn.Module], code_sizes: list[int]):
        super().__init__()
        self.decoders, self.code_sizes = nn.ModuleList(decoders), code_sizes

    def each(self, code: torch.Tensor) -> list[torch.Tensor]:
        return [decoder(part) for decoder, part in zip(self.decoders, code.split(self.code_sizes, -1))]

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return logit_of_mean_image(self.each(code))


def output_layer_weights(decoder: nn.Module) -> list[nn.Parameter]:
    """The weights of the layer(s) that produce a decoder's image logits: of each decoder's last
    linear or convolutional layer (norm layers' 1-D weights excluded)."""
    if isinstance(decoder, AveragedDecoders):
        return [weight for part in decoder.decoders for weight in output_layer_weights(part)]
    matrices = [module.weight for module in decoder.modules()
                if isinstance(getattr(module, "weight", None), nn.Parameter) and module.weight.dim() > 1]
    if not matrices:
        raise ValueError(f"{type(decoder).__name__} has no linear or convolutional layer")
    return matrices[-1:]


def start_at_mean_image(decoder: nn.Module, mean_image: torch.Tensor) -> None:
    """Make every ``PixelBias`` of a decoder (one; two for AveragedDecoders) start at the logit of
    the data's mean image."""
    biases = [module for module in decoder.modules() if isinstance(module, PixelBias)]
    if not biases:
        raise ValueError(f"{type(decoder).__name__} does not end in a PixelBias")
    for bias in biases:
        bias.start_at(mean_image)


def logit_of_mean_image(logits: list[torch.Tensor]) -> torch.Tensor:
    """logit(mean_i sigmoid(a_i)), computed in log space: log sum sigmoid(a_i) - log sum sigmoid(-a_i)."""
    stacked = torch.stack([a.float() for a in logits])
    return torch.logsumexp(F.logsigmoid(stacked), 0) - torch.logsumexp(F.logsigmoid(-stacked), 0)
