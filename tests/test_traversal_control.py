"""Traversal control (vae_lab/metrics/traversal.py) against colorsys and a brute-force count on a
model whose coordinates are known: one sets the hue, one the digit, one nothing."""

import colorsys

import pytest
import torch

from vae_lab.data import ImageSet
from vae_lab.data.color import hsv_to_rgb
from vae_lab.latents import LatentSpec
from vae_lab.metrics.traversal import (TRAVERSAL_VALUES, Looks, changes, coordinates, hue_distance, stroke_hue,
                                       traversal_control)

LEFT, RIGHT = torch.zeros(8, 8), torch.zeros(8, 8)
LEFT[1:7, 1:3] = 1.0
RIGHT[1:7, 5:7] = 0.6  # a dimmer stroke: its weights differ from LEFT's


def hue_of(z1: torch.Tensor) -> torch.Tensor:
    return (z1 + 2) / 4 * 0.8  # turns: from 0 (red) to 0.8 (magenta) over (-2, 2)


class KnownModel:
    """Code (z1, z2, z3): z1 sets the hue, the sign of z2 the stroke (the 'digit'), z3 nothing."""

    spec = LatentSpec(continuous=3)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        i = torch.arange(len(images), dtype=torch.float32)
        return torch.stack([(i % 3 - 1) * 0.7, torch.where(i % 2 == 0, 0.5, -0.5), torch.zeros_like(i)], 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        hsv = torch.stack([hue_of(codes[:, 0]), torch.ones(len(codes)), torch.ones(len(codes))], 1)
        stroke = torch.where((codes[:, 1] < 0)[:, None, None], LEFT, RIGHT)
        return stroke[:, None] * hsv_to_rgb(hsv)[:, :, None, None]


class Reference:
    """Reads digit 0 where the left columns are lit, 1 where the right ones are."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        brightness = images.sum(1)
        return torch.stack([brightness[..., :4].sum((-2, -1)), brightness[..., 4:].sum((-2, -1))], -1)

    def digits(self, images: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        return self(images).argmax(-1)


reference = Reference()


def test_stroke_hue_reads_the_tint_of_a_digit_as_colorsys_does():
    hues = torch.rand(50, generator=torch.Generator().manual_seed(0))
    hsv = torch.stack([hues, 0.6 + 0.4 * torch.rand(50), 0.75 + 0.25 * torch.rand(50)], 1)
    rgb = hsv_to_rgb(hsv)
    images = torch.stack([LEFT * 0.5 + RIGHT] * 50)[:, None] * rgb[:, :, None, None]
    hue, chroma = stroke_hue(images)
    expected = torch.tensor([colorsys.rgb_to_hsv(*color.tolist())[0] * 360 for color in rgb])
    assert hue_distance(hue, expected).max() < 1e-3
    intensity = (0.5**2 + 0.6**2) / (0.5 + 0.6)  # the strokes' mean pixel value, weighted by itself
    assert torch.allclose(chroma, hsv[:, 1] * hsv[:, 2] * intensity, atol=1e-5)


def test_hue_distance_goes_the_short_way_round():
    assert hue_distance(torch.tensor([350.0, 10.0, 0.0]), torch.tensor([10.0, 350.0, 180.0])).tolist() == [20, 20, 180]


def test_grey_images_change_no_hue():
    red, greyish_green = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.5, 0.55, 0.5])  # chroma 0.05
    base = LEFT[None, None] * red[None, :, None, None]
    swept = (LEFT[None, None] * greyish_green[None, :, None, None]).unsqueeze(0)  # [1, 1, 3, H, W]
    found = changes(Looks.of(base, reference, color=True), Looks.of(swept, reference, color=True))
    assert found == {"digit_change": 0.0, "hue_change": 0.0}


def test_coordinates_name_gaussian_dimensions_then_categorical_variables():
    found = coordinates(LatentSpec(continuous=2, discrete=((2, 3), (1, 4))))
    assert [(c.name, c.start, c.categories) for c in found] == [
        ("z1", 0, 0), ("z2", 1, 0), ("c1", 2, 3), ("c2", 5, 3), ("c3", 8, 4)]
    base = torch.zeros(1, 12)
    assert torch.equal(found[3].sweep(base)[0, :, 5:8], torch.eye(3))
    assert torch.equal(found[1].sweep(base)[0, :, 1], TRAVERSAL_VALUES)


@pytest.mark.parametrize("decode_piece", [7, 10**6])  # in uneven pieces, and all at once
def test_traversal_control_finds_the_coordinate_of_the_hue_and_of_the_digit(decode_piece):
    model = KnownModel()
    test = ImageSet(torch.zeros(30, 3, 8, 8, dtype=torch.uint8), torch.zeros(30, dtype=torch.long),
                    torch.arange(30))
    found = traversal_control(model, reference, test, decode_piece=decode_piece)

    # Brute force: every base code, every position, by colorsys and by the sign rule.
    codes = model.embed(torch.zeros(30))
    hue_change = digit_change = 0.0
    for z1, z2, _ in codes.tolist():
        base_hue = hue_of(torch.tensor(z1)).item() * 360
        for v in TRAVERSAL_VALUES.tolist():
            d = abs(hue_of(torch.tensor(v)).item() * 360 - base_hue) % 360
            hue_change += min(d, 360 - d)
            digit_change += (v < 0) != (z2 < 0)
    positions = len(codes) * len(TRAVERSAL_VALUES)
    table = found["traversal_control"]
    assert table["z1"]["hue_change"] == pytest.approx(hue_change / positions, rel=1e-4)
    assert table["z2"]["digit_change"] == pytest.approx(digit_change / positions)
    assert table["z1"]["digit_change"] == table["z2"]["hue_change"] == 0
    assert table["z3"] == {"digit_change": 0.0, "hue_change": 0.0}
    assert found["hue_control_by"] == "z1" and found["digit_control_by"] == "z2"
    assert found["hue_control"] == table["z1"]["hue_change"] and found["hue_control_digit_change"] == 0
    assert found["digit_control"] == table["z2"]["digit_change"] and found["digit_control_hue_change"] == 0


def test_on_grey_images_only_the_digit_is_measured():
    class GreyModel(KnownModel):
        def decode(self, codes):
            return super().decode(codes).mean(1, keepdim=True)

    test = ImageSet(torch.zeros(10, 1, 8, 8, dtype=torch.uint8), torch.zeros(10, dtype=torch.long), torch.arange(10))
    found = traversal_control(GreyModel(), reference, test)
    assert set(found) == {"traversal_control", "digit_control", "digit_control_by"}
    assert found["digit_control_by"] == "z2"


def test_metrics_json_lists_coordinates_in_their_order(tmp_path):
    """z1, z2, ..., z10, z11: sorted as text, metrics.json put z10 and z11 between z1 and z2."""
    import json

    from vae_lab.files import write_json

    table = {f"z{d}": {"digit_change": d / 100} for d in range(12, 0, -1)} | {"c2": {}, "c1": {}}
    write_json(tmp_path / "metrics.json", {"test/traversal_control": table, "test/digit_control": 0.1})
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert list(written) == ["test/digit_control", "test/traversal_control"]
    assert list(written["test/traversal_control"]) == ["c1", "c2", *(f"z{d}" for d in range(1, 13))]


def test_digits_read_in_bf16_are_those_read_in_float32():
    """The reference classifier's bf16 reading keeps float32's digits: images whose bf16 logits are
    close are judged again. Its logits here are as large as a trained one's (about 8), and two of its
    digits are near ties that plain bf16 orders otherwise in some images, so the check has something
    to catch."""
    from vae_lab.metrics.reference import ReferenceClassifier

    torch.manual_seed(0)
    classifier = ReferenceClassifier((1, 28, 28)).for_judging()
    with torch.no_grad():
        weight, bias = classifier.classify.weight, classifier.classify.bias
        weight.mul_(150)
        weight[3] = weight[5] + 0.02 * torch.randn(weight.shape[1])
        images = torch.rand(3000, 1, 28, 28)
        logits = classifier(images)
        bias[3] += bias[5] - bias[3] - (logits[:, 3] - logits[:, 5]).median()  # ties either way round
        exact = classifier(images).argmax(-1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = classifier(images).float()
        assert rounded.abs().amax(-1).median() > 4
        assert (rounded.argmax(-1) != exact).any()
        assert torch.equal(classifier.digits(images, "bf16"), exact)
        assert torch.equal(classifier.digits(images, "fp32"), exact)
