"""The latent explorer: its model-side functions against the model's own decode and embed, every
model type and backbone, the command's one-line refusals, and the page in a real browser (Debian's
Chromium driven by Playwright, nothing downloaded)."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from conftest import CHROMIUM, NO_CHROMIUM, launched_chromium
from test_cli import QUICK_EVAL
from vae_lab.api import Run
from vae_lab.data import load_splits
from vae_lab.explore.latent import Explorer, slerp
from vae_lab.models import build_model



def explorer_of(train_config, *overrides: str, points: int = 300) -> Explorer:
    """An Explorer of an untrained model (its weights as build_model makes them, in eval mode)."""
    config = train_config(*overrides)
    splits = load_splits(config.data)
    torch.manual_seed(0)
    model = build_model(config.model, config.backbone, splits.image_shape).eval()
    return Explorer(Run(Path("/nowhere"), config, [], {}, model, 0, torch.device("cpu"), splits), points)


def pixels_of(images: torch.Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---- the model side ---------------------------------------------------------------------------------


MODELS = [("model=continuous", "model.latent_dim=6"),
          ("model=discrete", "model.n_vars=3", "model.n_cats=5"),
          ("model=combined", "model.latent_dim=4", "model.n_vars=2", "model.n_cats=5"),
          ("model=both", "model.latent_dim=4", "model.n_vars=2", "model.n_cats=5"),
          ("model=semi", "model.variant=m2", "model.latent_dim=4"),
          ("model=semi", "model.variant=latent_classifier", "model.latent_dim=2")]
BACKBONES = [("backbone=mlp", "backbone.hidden=[32]"),
             ("backbone=conv", "backbone.channels=[8,16]", "backbone.hidden=32"),
             ("backbone=unet", "backbone.channels=[8,16]", "backbone.groups=4", "backbone.heads=2",
              "backbone.hidden=32")]


@pytest.mark.parametrize("backbone", BACKBONES, ids=lambda b: b[0])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: " ".join(m))
@pytest.mark.parametrize("data", ["mnist", "color_mnist"])
def test_every_model_and_backbone_decodes_the_point_its_controls_set(train_config, model, backbone, data):
    found = explorer_of(train_config, *model, *backbone, f"data={data}", points=64)
    layout = found.layout()
    rng = np.random.default_rng(0)
    gaussian = rng.normal(size=layout["continuous"]).tolist()
    categories = [int(rng.integers(n)) for n in layout["categorical"]]
    code = found.code(gaussian, categories)
    with torch.no_grad():
        expected = pixels_of(found.model.decode(code[None]))
    np.testing.assert_array_equal(found.decode(code[None]), expected)
    assert code[:layout["continuous"]].tolist() == pytest.approx(gaussian)
    assert code[layout["continuous"]:].sum() == len(categories)  # one chosen category per variable
    assert layout["image"]["channels"] == (3 if data == "color_mnist" else 1)
    assert layout["digits"] == (model[1] == "model.variant=latent_classifier")


def test_a_test_images_point_is_its_posterior_mean_and_most_probable_categories(train_config):
    found = explorer_of(train_config, "model=combined", "model.latent_dim=4", "model.n_vars=2", "model.n_cats=5")
    with torch.no_grad():
        code = found.model.embed(found.images[7:8])[0]
    point = found.point_of(7)
    assert point["gaussian"] == pytest.approx(code[:4].tolist(), abs=1e-6)
    assert point["categories"] == code[4:].view(2, 5).argmax(-1).tolist()
    image, rebuilt = found.test_image(7)
    np.testing.assert_array_equal(image, pixels_of(found.images[7:8].float())[0])
    with torch.no_grad():
        np.testing.assert_array_equal(rebuilt, pixels_of(found.model.reconstruct(found.images[7:8]))[0])
    with pytest.raises(IndexError):
        found.test_image(found.count)
    with pytest.raises(ValueError, match="category 5 of a variable of 5"):
        found.code([0.0] * 4, [5, 0])
    with pytest.raises(ValueError, match="expected 4 Gaussian values and 2 categories"):
        found.code([0.0] * 3, [0, 0])


def test_traversal_rows_sweep_each_coordinate_the_page_shows_and_each_variable(train_config):
    """Each row is the point with one coordinate moved, decoded: a Gaussian one the sliders show (most
    KL first; a quiet or inactive one is left out) at each traversal value, a categorical variable at
    each category; at most ``most`` Gaussian rows, the rest counted."""
    from vae_lab.explore.latent import Coordinate as Slider
    from vae_lab.metrics.traversal import TRAVERSAL_VALUES

    found = explorer_of(train_config, "model=combined", "model.latent_dim=4", "model.n_vars=2", "model.n_cats=3")
    found.coordinates = [Slider(2, 3.0, True, False), Slider(0, 1.0, True, False), Slider(1, 0.05, True, True),
                         Slider(3, 0.5, False, False)]
    code = found.code([0.3, -0.2, 0.1, 0.7], [1, 2])
    rows, left_out = found.traversal(code)
    assert [row["name"] for row in rows] == ["z3", "z1", "c1", "c2"] and left_out == 0

    def moved(where: slice, values: torch.Tensor) -> np.ndarray:
        codes = code.repeat(len(values), 1)
        codes[:, where] = values
        with torch.no_grad():
            return pixels_of(found.model.decode(codes))

    expected = {"z3": moved(slice(2, 3), TRAVERSAL_VALUES[:, None]), "z1": moved(slice(0, 1), TRAVERSAL_VALUES[:, None]),
                "c1": moved(slice(4, 7), torch.eye(3)), "c2": moved(slice(7, 10), torch.eye(3))}
    for row in rows:
        assert row["images"].shape == expected[row["name"]].shape
        assert np.abs(row["images"].astype(int) - expected[row["name"]]).max() <= 1, row["name"]  # batch rounding
    rows, left_out = found.traversal(code, most=1)
    assert [row["name"] for row in rows] == ["z3", "c1", "c2"] and left_out == 1


def test_the_decoded_grid_is_each_cells_centre_decoded_largest_y_on_top(train_config):
    found = explorer_of(train_config, "model=combined", "model.latent_dim=4", "model.n_vars=2", "model.n_cats=3")
    code = found.code([0.3, -0.2, 0.1, 0.7], [1, 2])
    picture = found.grid(code, (2, 0), (-1.0, 2.0), (0.0, 3.0), 3)
    assert picture.shape == (3 * 28, 3 * 28, 1)
    for row, y in enumerate([2.5, 1.5, 0.5]):
        for column, x in enumerate([-0.5, 0.5, 1.5]):
            moved = code.clone()
            moved[2], moved[0] = x, y
            with torch.no_grad():
                expected = pixels_of(found.model.decode(moved[None]))[0]
            cell = picture[row * 28:(row + 1) * 28, column * 28:(column + 1) * 28]
            assert np.abs(cell.astype(int) - expected).max() <= 1, (row, column)  # batch rounding
    for axes, cells, x, message in [((2, 2), 3, (0.0, 1.0), "axes=\\[2, 2\\]"), ((2, 5), 3, (0.0, 1.0), "axes=\\[2, 5\\]"),
                                     ((2, 0), 1, (0.0, 1.0), "cells=1"), ((2, 0), 3, (1.0, 1.0), "x=\\[1.0, 1.0\\]")]:
        with pytest.raises(ValueError, match=message):
            found.grid(code, axes, x, (0.0, 1.0), cells)


def test_an_image_from_outside_is_encoded_as_the_model_encodes_it(train_config):
    """A drawn or dropped image, as the page sends it (uint8 pixels): its point, reconstruction and
    nearest test images are the model's own; a test image sent back is its own nearest, at distance 0."""
    found = explorer_of(train_config, "model=combined", "model.latent_dim=4", "model.n_vars=2", "model.n_cats=3")
    image = pixels_of(found.images[5:6].float())[0]
    encoded = found.encode(image)
    assert encoded["point"]["gaussian"] == pytest.approx(found.point_of(5)["gaussian"], abs=1e-5)
    assert encoded["point"]["categories"] == found.point_of(5)["categories"]
    np.testing.assert_array_equal(encoded["reconstruction"], found.test_image(5)[1])
    assert encoded["neighbours"][0][0] == 5 and encoded["neighbours"][0][1] == pytest.approx(0, abs=1e-5)
    with torch.no_grad():
        code = found.model.embed(found.images[5:6])[0].double()
    by_hand = torch.cdist(code[None], found.codes.double())[0].argsort()[:8].tolist()
    assert [i for i, _ in encoded["neighbours"]] == by_hand
    with pytest.raises(ValueError, match="an image of this model is 28 x 28 x 1 bytes, not 28 x 28 x 3"):
        found.encode(np.zeros((28, 28, 3), np.uint8))


def test_a_pictures_neighbours_are_the_nearest_codes_by_brute_force(train_config):
    found = explorer_of(train_config, "model=combined", "model.latent_dim=4", "model.n_vars=2", "model.n_cats=3")
    codes = found.codes.double().numpy()
    for index in (0, 17):
        distances = np.sqrt(((codes - codes[index]) ** 2).sum(1))
        distances[index] = np.inf
        expected = np.argsort(distances, kind="stable")[:8]
        got = found.neighbours(index)
        assert [i for i, _ in got] == expected.tolist()
        np.testing.assert_allclose([d for _, d in got], distances[expected], rtol=1e-9)
    with pytest.raises(IndexError):
        found.neighbours(found.count)


def test_the_map_is_the_codes_own_coordinates(train_config):
    found = explorer_of(train_config, "model=continuous", "model.latent_dim=6")
    with torch.no_grad():
        kl = found.model.kl_details(found.images)["kl_per_dim"].mean(0)
        codes = found.model.embed(found.images).double().numpy()
    order = kl.argsort(descending=True).tolist()
    assert [c.index for c in found.coordinates] == order
    assert [c.quiet for c in found.coordinates] == [bool(kl[d] < 0.1) for d in order]  # folded on the page
    points, axes = found.map("kl")
    np.testing.assert_allclose(points, codes[:, order[:2]], rtol=1e-5, atol=1e-6)
    assert axes[0].startswith(f"z{order[0] + 1} ")
    pca, _ = found.map("pca")
    np.testing.assert_allclose(np.abs(pca), np.abs(PCA(n_components=2).fit_transform(codes)), rtol=1e-4, atol=1e-5)
    tsne, axes = found.map("tsne")
    assert tsne.shape == (found.count, 2) and axes == ["t-SNE 1", "t-SNE 2"]
    with pytest.raises(ValueError, match="map 'umap'"):
        found.map("umap")


def test_interpolation_decodes_the_path_between_two_codes(train_config):
    found = explorer_of(train_config, "model=continuous", "model.latent_dim=6")
    start, end = found.codes[1], found.codes[2]
    strip = found.interpolate(start, end, 5)
    np.testing.assert_array_equal(strip[0], found.decode(start[None])[0])
    np.testing.assert_array_equal(strip[-1], found.decode(end[None])[0])
    np.testing.assert_array_equal(strip[2], found.decode(((start + end) / 2)[None])[0])
    curved = found.interpolate(start, end, 5, "spherical")
    np.testing.assert_array_equal(curved[0], strip[0])
    with pytest.raises(ValueError, match="interpolation 'cubic'"):
        found.interpolate(start, end, 5, "cubic")


def test_spherical_interpolation_keeps_to_the_great_circle():
    a, b = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 4.0, 0.0])
    t = torch.linspace(0, 1, 5)[:, None]
    path = slerp(a, b, t)
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path.norm(dim=1), 2 + 2 * t[:, 0])  # the norm goes linearly from 2 to 4
    halfway = path[2] / path[2].norm()
    torch.testing.assert_close(halfway, torch.tensor([1.0, 1.0, 0.0]) / 2 ** 0.5)  # 45 degrees
    torch.testing.assert_close(slerp(a, -a, t)[2], torch.zeros(3))  # opposite: straight through 0


def test_a_digit_of_a_latent_classifier_is_its_test_images_mean_code(train_config):
    found = explorer_of(train_config, "model=semi", "model.variant=latent_classifier", "model.latent_dim=2")
    digits = found.digit_codes()
    mine = found.codes[torch.from_numpy(found.labels == 3)]
    assert digits[3]["gaussian"] == pytest.approx(mine.mean(0).tolist(), abs=1e-6)
    assert explorer_of(train_config, "model=semi", "model.variant=m2", "model.latent_dim=2").digit_codes() is None


# ---- the command and the page -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, vae_lab_command, data_root):
    """Two short runs of a color sweep (latent 2 and 3), for the server and the browser."""
    sweep = tmp_path_factory.mktemp("explore") / "sweep"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    subprocess.run([*vae_lab_command, "sweep", "model.latent_dim=3,4", "data=color_mnist", "trainer.epochs=2",
                    "backbone.hidden=[64]", *QUICK_EVAL, "eval.figures=false", f"hydra.sweep.dir={sweep}"],
                   env=env, check=True, capture_output=True, timeout=300)
    return sweep


class Server:
    """`vae-lab explore FOLDER` in a process of its own; its address is the first line it prints."""

    def __init__(self, command: list[str], folder: Path, data_root: Path, *args: str):
        env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
        self.process = subprocess.Popen([*command, "explore", str(folder), *args], env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.process.stderr.read()

    def get(self, path: str, body: dict = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stop(self) -> subprocess.CompletedProcess:
        self.process.send_signal(2)  # Ctrl-C
        out, err = self.process.communicate(timeout=30)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)


def decoded(image: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(image["data"]), dtype=np.uint8).reshape(image["shape"])


def test_the_server_decodes_what_the_model_decodes_and_stops_cleanly(trained, vae_lab_command, data_root):
    import vae_lab

    server = Server(vae_lab_command, trained, data_root)
    try:
        runs = server.get("/api/runs")
        assert [r["label"] for r in runs] == ["run 0: latent_dim=3", "run 1: latent_dim=4"]
        layout = server.get("/api/runs/1/layout")
        assert layout["continuous"] == 4 and layout["color"] and "latent 4" in layout["caption"]
        point = {"gaussian": [0.5, -1.0, 0.25, 2.0], "categories": []}
        answer = server.get("/api/runs/1/decode", point)
        run = vae_lab.load_run(trained / "1", data_root=str(data_root))
        with torch.no_grad():
            expected = pixels_of(run.model.decode(torch.tensor([point["gaussian"]])))[0]
        np.testing.assert_array_equal(decoded(answer["image"]), expected)
        strip = server.get("/api/runs/1/interpolate", {"start": point, "end": point, "from_images": [0, 1],
                                                        "steps": 4, "mode": "spherical"})
        assert len(strip["images"]) == 4
        with pytest.raises(urllib.error.HTTPError) as refused:  # more than a strip holds: said, not clamped to 64
            server.get("/api/runs/1/interpolate", {"start": point, "end": point, "from_images": [0, 1], "steps": 200})
        assert json.loads(refused.value.read())["error"] == "steps=200: expected 2 to 64 decodings in one strip"
        with pytest.raises(urllib.error.HTTPError):  # a code of the wrong size: 400, with the reason
            server.get("/api/runs/1/decode", {"gaussian": [0.0], "categories": []})
        assert len(server.get("/api/runs/1/map?method=tsne")["x"]) == len(run.splits.test)
    finally:
        stopped = server.stop()
    assert stopped.returncode == 130 and stopped.stderr.strip().splitlines()[-1] == "vae-lab: interrupted"
    assert "Traceback" not in stopped.stderr
    # What takes seconds is said as it starts (before the address, once 8-31 s of silence), t-SNE too.
    said = [line for line in stopped.stderr.splitlines() if line.startswith("vae-lab explore: ")]
    assert said[0] == f"vae-lab explore: opening {trained / '0'}: its model, and its test images' codes"
    assert said[1].startswith(f"vae-lab explore: {trained / '0'} is open (")
    assert any(line.startswith(f"vae-lab explore: t-SNE map of {len(run.splits.test)} test codes of {trained / '1'}")
               for line in said)


def test_bad_requests_and_a_damaged_run_are_4xx_with_one_line_and_no_traceback(trained, vae_lab_command,
                                                                                data_root, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(trained, sweep)
    best = sweep / "1" / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    server = Server(vae_lab_command, sweep, data_root)
    point = {"gaussian": [0.5, -1.0, 0.25], "categories": []}

    def refused(path: str, body=None) -> tuple[int, str]:
        with pytest.raises(urllib.error.HTTPError) as answer:
            server.get(path, body)
        return answer.value.code, json.loads(answer.value.read())["error"]

    try:
        assert refused("/api/runs/0/decode", [1, 2]) == (
            400, 'the body: expected {"gaussian": [numbers], "categories": [integers]}, got [1, 2]')
        assert refused("/api/runs/0/decode", {"gaussian": [0.5, "x", 1], "categories": []})[0] == 400
        assert refused("/api/runs/0/interpolate", [1])[0] == 400
        assert refused("/api/runs/0/interpolate", {"start": point, "end": 3, "steps": 4}) == (
            400, 'end: expected {"gaussian": [numbers], "categories": [integers]}, got 3')
        assert refused("/api/runs/0/interpolate", {"start": point, "end": point, "steps": 4.5})[0] == 400
        assert refused("/api/runs/0/interpolate", {"start": point, "end": point, "from_images": [{}], "steps": 4}) == (
            400, "from_images=[{}]: expected two test image numbers")
        assert refused("/api/runs/0/traversal", {"gaussian": [0.5], "categories": []}) == (
            400, "expected 3 Gaussian values and 0 categories")
        assert refused("/api/runs/0/encode", {"image": 5}) == (
            400, 'the body: expected {"image": {"data": base64, "shape": [h, w, c]}}, got {"image": 5}')
        assert refused("/api/runs/0/encode", {"image": {"data": "!!", "shape": [28, 28, 3]}}) == (
            400, "the image's data: not base64")
        assert refused("/api/runs/0/encode", {"image": {"data": "AAAA", "shape": [28, 28, 3]}}) == (
            400, "the image's data: 3 bytes for a shape of 2352")
        assert refused("/api/runs/0/grid", [1])[0] == 400
        assert refused("/api/runs/0/grid", {"point": point, "axes": [0, 0], "x": [0, 1], "y": [0, 1], "cells": 4}) == (
            400, "axes=[0, 0]: expected two different Gaussian coordinates of 0 to 2")
        assert refused("/api/runs/0/grid", {"point": point, "axes": [0, 1], "x": [0, 1], "y": [0, 1], "cells": 99}) == (
            400, "cells=99: expected 2 to 24 a side")
        wrong = base64.b64encode(bytes(28 * 28)).decode()
        assert refused("/api/runs/0/encode", {"image": {"data": wrong, "shape": [28, 28, 1]}}) == (
            400, "an image of this model is 28 x 28 x 3 bytes, not 28 x 28 x 1")
        status, error = refused("/api/runs/1/layout")
        assert status == 409 and "best.pt" in error and "\n" not in error
        assert server.get("/api/runs/0/layout")["continuous"] == 3  # the good run is unharmed
    finally:
        stopped = server.stop()
    assert "Traceback" not in stopped.stderr and stopped.returncode == 130
    assert any("best.pt" in line for line in stopped.stderr.splitlines())  # the damage, said once in the terminal


def test_bad_input_to_explore_is_one_line(trained, vae_lab, tmp_path):
    from test_faults import one_line_error

    assert "neither a run folder" in one_line_error(vae_lab("explore", str(tmp_path), check=False))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = one_line_error(vae_lab("explore", str(trained / "0"), "--port", str(port), check=False))
    assert f"port {port} on 127.0.0.1 is in use" in message
    for port in ("70000", "-5"):  # not a port: once an OverflowError's traceback
        assert one_line_error(vae_lab("explore", str(trained / "0"), "--port", port, check=False)) == (
            f"vae-lab: error: --port {port}: expected a port number from 0 to 65535 (or leave --port out for a free one)")
    if not torch.cuda.is_available():  # once "the best weights ... are lost", which they were not
        assert one_line_error(vae_lab("explore", str(trained / "0"), "--device", "cuda", check=False)) == (
            "vae-lab: error: --device cuda: no CUDA GPU is visible on this machine; use cpu or auto")


def test_without_the_extra_explore_names_the_pip_command(trained, data_root, tmp_path):
    """Starlette hidden from the import system, as where the extra is not installed."""
    script = ("import sys\nsys.modules['starlette'] = None\nfrom vae_lab.cli import main\n"
              f"main(['explore', {str(trained / '0')!r}])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "VAE_LAB_DATA": str(data_root)})
    assert result.returncode == 2
    assert result.stderr.strip() == ("vae-lab: error: vae-lab explore needs the explore extra (starlette is not "
                                     "installed): pip install 'vae-lab[explore]'")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM)
def test_the_page_in_a_real_browser(trained, vae_lab_command, data_root, tmp_path):
    """Chromium opens the page of a sweep, moves a slider and gets the model's own decoding at that
    point, clicks a point of the map and decodes from its code, compares two runs, and takes
    screenshots (looked at by a person when the page changes)."""
    import vae_lab

    server = Server(vae_lab_command, trained, data_root)
    run = vae_lab.load_run(trained / "0", data_root=str(data_root))
    try:
        with launched_chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url)
            page.wait_for_selector("#map .scatterlayer .point", state="attached", timeout=60000)
            page.wait_for_function("document.getElementById('latency').dataset.ms !== undefined", timeout=30000)

            def canvas(selector: str) -> np.ndarray:
                rgba = page.evaluate(f"""() => {{ const c = document.querySelector('{selector}');
                    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }}""")
                shape = page.evaluate(f"() => [document.querySelector('{selector}').height, "
                                      f"document.querySelector('{selector}').width]")
                return np.array(rgba, dtype=np.uint8).reshape(*shape, 4)[..., :3]

            def settled(selector: str, expected: np.ndarray, seconds: float = 30) -> np.ndarray:
                # A loaded machine answers late: poll for the expected picture, then compare what is shown.
                deadline = time.monotonic() + seconds
                while not np.array_equal(shown := canvas(selector), expected) and time.monotonic() < deadline:
                    page.wait_for_timeout(200)
                return shown

            before = canvas("#decoded-a")
            slider = page.locator("#controls input[type=range]").first
            index = int(slider.get_attribute("data-index"))
            slider.evaluate("e => { e.value = 1.5; e.dispatchEvent(new Event('input')); }")
            gaussian = [0.0] * 3
            gaussian[index] = 1.5
            with torch.no_grad():
                expected = pixels_of(run.model.decode(torch.tensor([gaussian])))[0]
            after = settled("#decoded-a", expected)
            assert not np.array_equal(before, after), "moving a slider changed nothing"
            np.testing.assert_array_equal(after, expected)

            # Click a point of the map: the plot's own axes give its pixel position.
            position = page.evaluate("""() => { const p = document.getElementById('map'), t = p.data[0];
                const xa = p._fullLayout.xaxis, ya = p._fullLayout.yaxis, box = p.getBoundingClientRect();
                return {x: box.left + xa._offset + xa.l2p(t.x[0]), y: box.top + ya._offset + ya.l2p(t.y[0]),
                        image: t.customdata[0]}; }""")
            page.mouse.move(position["x"], position["y"])
            page.mouse.click(position["x"], position["y"])
            page.wait_for_selector("#picked figure", timeout=10000)
            assert "test image" in page.inner_text("#picked")
            picked = int(page.inner_text("#picked figcaption").split()[2])
            with torch.no_grad():
                code = run.model.embed(run.splits.test.batch(torch.tensor([picked])).images)
                expected = pixels_of(run.model.decode(code))[0]
            np.testing.assert_array_equal(settled("#decoded-a", expected), expected)
            page.wait_for_selector("#neighbours figure", timeout=30000)
            nearest = server.get(f"/api/runs/0/test/{picked}/neighbours")
            assert page.locator("#neighbours figure").count() == len(nearest) == 8
            page.fill("#find", "5")
            page.dispatch_event("#find", "change")
            page.wait_for_function("document.querySelector('#picked figcaption').textContent.startsWith('test image 5 ')",
                                   timeout=30000)
            page.wait_for_selector("#neighbours figure", timeout=30000)
            page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)

            # Redrawn maps do not pile up listeners: after three redraws one click asks for its image
            # once (it was once per redraw). And the clicked image stays while the pointer crosses
            # another point on its way to the buttons (a hover used to replace it).
            for method in ("pca", "kl", "pca"):
                page.select_option("#method", method)
                page.wait_for_function(f"document.getElementById('map')._fullLayout.xaxis.title.text"
                                       f".startsWith('{'PC' if method == 'pca' else 'z'}')", timeout=30000)
            asked = []
            page.on("request", lambda request: asked.append(request.url)
                    if re.search(r"/test/\d+$", request.url) else None)  # the image, not its neighbours
            spot = lambda i: page.evaluate(f"""() => {{ const p = document.getElementById('map'), t = p.data[0];
                const xa = p._fullLayout.xaxis, ya = p._fullLayout.yaxis, box = p.getBoundingClientRect();
                return {{x: box.left + xa._offset + xa.l2p(t.x[{i}]), y: box.top + ya._offset + ya.l2p(t.y[{i}]),
                         image: t.customdata[{i}]}}; }}""")  # noqa: E731
            first, other = spot(0), spot(1)
            with page.expect_response(lambda response: re.search(r"/test/\d+$", response.url), timeout=30000):
                page.mouse.click(first["x"], first["y"])  # the image under the pointer (points may overlap)
            page.wait_for_timeout(500)
            assert len(asked) == 1, asked
            clicked = page.inner_text("#picked figcaption")
            assert clicked.startswith(f"test image {asked[0].rsplit('/', 1)[1]} ")  # the image asked for is shown
            page.mouse.move(other["x"], other["y"])
            page.wait_for_timeout(500)
            assert page.inner_text("#picked figcaption") == clicked and len(asked) == 1, asked

            # A digit hidden by a click on the legend stays hidden when the axes change (it came back).
            visibility = "() => Object.fromEntries(document.getElementById('map').data.map(t => [t.name, t.visible]))"
            page.locator("#map .legend .traces").nth(3).click()
            page.wait_for_function(f"({visibility})()['3'] === 'legendonly'", timeout=30000)
            page.select_option("#method", "kl")
            page.wait_for_function("document.getElementById('map')._fullLayout.xaxis.title.text.startsWith('z')",
                                   timeout=30000)
            shown = page.evaluate(visibility)
            assert shown["3"] == "legendonly" and shown["2"] is True, shown

            # Colored by hue bin, each legend swatch is its bin's mean tint (it was one point's: no blue
            # entry while blue points showed).
            page.select_option("#color-by", "hue")
            page.wait_for_function("document.getElementById('map').data.some(t => t.name.startsWith('hue'))",
                                   timeout=30000)
            swatches = page.evaluate("""() => { const data = document.getElementById('map').data;
                const rgb = s => s.slice(4, -1).split(',').map(Number);
                return data.filter(t => t.showlegend !== false && t.name.startsWith('hue')).map(t => {
                    const points = data.find(p => p.legendgroup === t.legendgroup && p.showlegend === false);
                    const tints = points.marker.color.map(rgb);
                    return [t.name, rgb(t.marker.color), [0, 1, 2].map(c => tints.reduce((a, v) => a + v[c], 0) / tints.length)];
                }); }""")
            assert len(swatches) >= 3
            for name, swatch, mean in swatches:
                assert np.abs(np.array(swatch) - np.array(mean)).max() <= 1.5, (name, swatch, mean)
            page.locator("#map").screenshot(path=str(tmp_path / "explorer_hue.png"))
            page.select_option("#color-by", "digit")

            # An interpolation strip from the picked image to itself: more steps than a strip holds is
            # said on the page (it was clamped to 64 without a word), then a strip of five is drawn.
            page.click("#picked button:text('from here')")
            page.click("#picked button:text('to here')")
            page.fill("#steps", "200")
            page.click("#go")
            page.wait_for_selector("#strip .error", timeout=30000)
            assert page.inner_text("#strip") == "steps=200: expected 2 to 64 decodings in one strip"
            page.locator("#interpolation").screenshot(path=str(tmp_path / "explorer_steps_refused.png"))
            page.fill("#steps", "5")
            page.click("#go")
            page.wait_for_function("document.querySelectorAll('#strip canvas').length === 5", timeout=30000)
            page.locator("#interpolation").screenshot(path=str(tmp_path / "explorer_strip.png"))

            page.select_option("#compare", "1")  # latent 3 beside latent 4: laid out differently
            page.wait_for_function("document.getElementById('compare-note').textContent !== ''", timeout=30000)
            assert "lays its code out differently" in page.inner_text("#compare-note")

            # Picking run 1, then run 0 before run 1 has opened, with run 1's answer arriving last (as
            # on a loaded machine): the page ends as run 0's alone, its caption, its sliders and its
            # model's decoding (run 1's caption and controls used to win, and every decode failed).
            # While a run opens, its controls wait.
            page.select_option("#compare", "")
            held = []
            page.route("**/api/runs/1/layout", lambda route: held.append(route))
            page.select_option("#run", "1")
            page.wait_for_function("document.querySelector('main').inert", timeout=30000)
            assert page.is_visible("#loading")
            page.screenshot(path=str(tmp_path / "explorer_opening.png"))
            page.select_option("#run", "0")
            page.wait_for_function("!document.querySelector('main').inert", timeout=60000)
            assert held, "run 1's layout was never asked for"
            for route in held:
                route.continue_()
            page.unroute("**/api/runs/1/layout")
            page.wait_for_timeout(1000)  # time for the stale answer to do harm
            layout = server.get("/api/runs/0/layout")
            assert page.inner_text("#caption") == layout["caption"]
            assert page.locator("#controls input[type=range]").count() == len(layout["coordinates"]) == 3
            slider = page.locator("#controls input[type=range]").first
            index = int(slider.get_attribute("data-index"))
            slider.evaluate("e => { e.value = -1.0; e.dispatchEvent(new Event('input')); }")
            gaussian = [0.0] * 3
            gaussian[index] = -1.0
            with torch.no_grad():
                expected = pixels_of(run.model.decode(torch.tensor([gaussian])))[0]
            np.testing.assert_array_equal(settled("#decoded-a", expected), expected)
            assert "error" not in page.inner_html("#latency")

            # Reset, a draw from the prior, and the view's address: opened again, the address shows the
            # same run, map and point.
            def decoded(gaussian: list) -> np.ndarray:
                with torch.no_grad():
                    return pixels_of(run.model.decode(torch.tensor([gaussian], dtype=torch.float32)))[0]

            page.click("#reset")
            np.testing.assert_array_equal(settled("#decoded-a", decoded([0.0] * 3)), decoded([0.0] * 3))

            # Traversal rows follow the decoded point: a row per shown coordinate, its first picture that
            # coordinate at -2 with the rest of the point held, redrawn as a slider moves the rest.
            def row_picture(name: str, gaussian: list) -> np.ndarray:
                expected, deadline = decoded(gaussian), time.monotonic() + 30
                while time.monotonic() < deadline:  # one pass decodes every row: a pixel may round otherwise
                    shown = canvas(f'#rows .trow[data-name="{name}"] canvas')
                    if np.abs(shown.astype(int) - expected).max() <= 1:
                        break
                    page.wait_for_timeout(200)
                return shown

            page.check("#traversal-on")
            page.wait_for_selector("#rows .trow[data-name]", timeout=30000)
            names = page.eval_on_selector_all("#rows .trow[data-name]", "rows => rows.map(r => r.dataset.name)")
            sliders = page.eval_on_selector_all("#controls input[type=range]", "s => s.map(e => +e.dataset.index)")
            assert names == [f"z{i + 1}" for i in sliders[:len(names)]] and names
            zero = [0.0] * 3
            for name in names:
                point = list(zero)
                point[int(name[1:]) - 1] = -2.0
                assert np.abs(row_picture(name, point).astype(int) - decoded(point)).max() <= 1, name
            if len(names) > 1:
                slider.evaluate("e => { e.value = 1.0; e.dispatchEvent(new Event('input')); }")
                point = list(zero)
                point[index], point[int(names[1][1:]) - 1] = 1.0, -2.0
                assert np.abs(row_picture(names[1], point).astype(int) - decoded(point)).max() <= 1
            page.locator("#traversal").screenshot(path=str(tmp_path / "explorer_traversal.png"))

            # What is shown, saved as a PNG: every picture at 4 x 4 pixels per pixel, one row per row.
            def saved(button: str) -> np.ndarray:
                from PIL import Image

                with page.expect_download(timeout=30000) as download:
                    page.click(button)
                assert re.fullmatch(r"vae-lab-run0-(decoded|traversal)\.png", download.value.suggested_filename)
                return np.asarray(Image.open(download.value.path()).convert("RGB"))

            picture = saved("#save-rows")
            side = run.splits.test.images.shape[-1]
            assert picture.shape[:2] == (len(names) * (side + 1) * 4 - 4, 9 * (side + 1) * 4 - 4)
            first_row = canvas(f'#rows .trow[data-name="{names[0]}"] canvas')
            np.testing.assert_array_equal(picture[:side * 4:4, :side * 4:4], first_row)
            page.uncheck("#traversal-on")
            page.click("#reset")
            np.testing.assert_array_equal(settled("#decoded-a", decoded([0.0] * 3)), decoded([0.0] * 3))
            picture = saved("#save-decoded")
            assert picture.shape[:2] == (side * 4, side * 4)
            np.testing.assert_array_equal(picture[::4, ::4], decoded([0.0] * 3))

            # Your own image: a test image's pixels put on the drawing square encode to that image's point
            # (the decoder and the map follow); a stroke drawn with the mouse and an image file dropped on
            # the square are encoded alike.
            picked = server.get("/api/runs/0/test/11")
            page.evaluate("""image => { const c = document.getElementById('draw'), raw = atob(image.data);
                const [h, w, k] = image.shape, rgba = new Uint8ClampedArray(h * w * 4);
                for (let i = 0; i < h * w; i++) { for (let j = 0; j < 3; j++) rgba[4 * i + j] = raw.charCodeAt(i * k + (k === 3 ? j : 0));
                    rgba[4 * i + 3] = 255; }
                c.getContext('2d').putImageData(new ImageData(rgba, w, h), 0, 0); }""", picked["image"])
            with page.expect_response(lambda response: response.url.endswith("/encode"), timeout=30000) as answer:
                page.click("#encode")
            page.wait_for_selector("#own-reconstruction", timeout=30000)
            assert answer.value.json()["point"]["gaussian"] == pytest.approx(picked["point"]["gaussian"], abs=1e-2)
            page.wait_for_function("state.gaussian.some(v => v !== 0)", timeout=30000)
            assert page.evaluate("state.gaussian") == pytest.approx(answer.value.json()["point"]["gaussian"])
            assert page.locator("#own-result figure").count() == 1 + 8  # its reconstruction and 8 neighbours
            page.locator("#own").screenshot(path=str(tmp_path / "explorer_own.png"))
            page.click("#draw-clear")
            page.locator("#draw").scroll_into_view_if_needed()
            box = page.locator("#draw").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.8, steps=12)
            page.mouse.up()
            assert canvas("#draw").max() > 100, "the mouse drew nothing"
            with page.expect_response(lambda response: response.url.endswith("/encode"), timeout=30000) as answer:
                page.evaluate("""async () => { const c = document.createElement('canvas'); c.width = c.height = 56;
                    const ctx = c.getContext('2d'); ctx.fillStyle = '#000'; ctx.fillRect(0, 0, 56, 56);
                    ctx.fillStyle = '#fff'; ctx.fillRect(24, 8, 8, 40);
                    const blob = await new Promise(done => c.toBlob(done, 'image/png'));
                    const files = new DataTransfer(); files.items.add(new File([blob], 'one.png', {type: 'image/png'}));
                    document.getElementById('draw').dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true})); }""")
            assert answer.value.ok
            page.wait_for_function(f"state.gaussian[0] === {answer.value.json()['point']['gaussian'][0]}", timeout=30000)
            dropped = canvas("#draw")
            assert dropped[:, 12:16].max() > 200 and dropped[:, :8].max() < 30  # a bar down the middle, fitted in
            page.click("#reset")

            # The decoded point is marked on the map: on the two coordinates with the most KL, at its values
            # there; on PCA's axes, at its projection (the placement the server sends puts the test codes
            # where the map draws them).
            marked = "() => { const s = (document.getElementById('map').layout.shapes || [])[0]; " \
                     "return s ? [s.xanchor, s.yanchor] : null; }"
            page.select_option("#method", "kl")
            page.wait_for_function(f"({marked})() !== null", timeout=30000)
            slider.evaluate("e => { e.value = 1.25; e.dispatchEvent(new Event('input')); }")
            axes = server.get("/api/runs/0/map?method=kl")["placement"]["axes"]
            page.wait_for_function(f"({marked})()[{axes.index(index)}] === 1.25" if index in axes else "true",
                                   timeout=30000)
            state = page.evaluate("state.gaussian")
            assert page.evaluate(marked) == pytest.approx([state[axes[0]], state[axes[1]]])

            # On these axes a click between the points decodes there: the two coordinates take the
            # clicked values, the rest of the point held.
            page.locator("#map").scroll_into_view_if_needed()  # the buttons below scrolled the page down
            empty = page.evaluate("""() => { const p = document.getElementById('map'), xa = p._fullLayout.xaxis,
                ya = p._fullLayout.yaxis, box = p.getBoundingClientRect();
                const dots = p.data.filter(t => t.customdata).flatMap(t => t.x.map((x, i) => [xa.l2p(x), ya.l2p(t.y[i])]));
                let best = null;
                for (let gx = 0.05; gx < 1; gx += 0.05) for (let gy = 0.05; gy < 1; gy += 0.05) {
                    const px = gx * xa._length, py = gy * ya._length;
                    const d = Math.min(...dots.map(([a, b]) => Math.hypot(a - px, b - py)));
                    if (!best || d > best.d) best = {d, px, py};
                }
                return {x: box.left + xa._offset + best.px, y: box.top + ya._offset + best.py,
                        value: [xa.p2l(best.px), ya.p2l(best.py)], d: best.d}; }""")
            assert empty["d"] > 25, empty  # beyond plotly's reach for hovering a point
            held = page.evaluate("state.gaussian")
            page.mouse.move(empty["x"], empty["y"])
            page.wait_for_timeout(300)  # plotly lets go of the last point hovered on the way
            page.mouse.click(empty["x"], empty["y"])
            page.wait_for_function(f"Math.abs(state.gaussian[{axes[0]}] - {empty['value'][0]}) < 0.01", timeout=30000)
            clicked = page.evaluate("state.gaussian")
            assert [clicked[axes[0]], clicked[axes[1]]] == pytest.approx(empty["value"], abs=0.01)
            assert [v for i, v in enumerate(clicked) if i not in axes] == [v for i, v in enumerate(held) if i not in axes]
            np.testing.assert_array_equal(settled("#decoded-a", decoded(clicked)), decoded(clicked))
            state = clicked

            # The decoded grid behind these axes: each cell is the point with the two coordinates at the
            # cell's centre, the top left cell at the view's smallest x and largest y.
            page.check("#grid-on")
            page.wait_for_function("(document.getElementById('map').layout.images || []).length === 1", timeout=30000)
            grid = page.evaluate("""async () => { const p = document.getElementById('map'), g = p.layout.images[0];
                const img = new Image(); img.src = g.source; await img.decode();
                const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
                const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
                return {x: g.x, y: g.y, sizex: g.sizex, sizey: g.sizey, width: img.width, height: img.height,
                        view: [p._fullLayout.xaxis.range, p._fullLayout.yaxis.range],
                        pixels: Array.from(ctx.getImageData(0, 0, img.width, img.height).data)}; }""")
            assert [grid["x"], grid["y"]] == pytest.approx([grid["view"][0][0], grid["view"][1][1]])
            assert grid["width"] == grid["height"] == 12 * side
            picture = np.array(grid["pixels"], dtype=np.uint8).reshape(grid["height"], grid["width"], 4)[..., :3]
            corner = list(clicked)
            corner[axes[0]] = grid["x"] + grid["sizex"] / 24
            corner[axes[1]] = grid["y"] - grid["sizey"] / 24
            assert np.abs(picture[:side, :side].astype(int) - decoded(corner)).max() <= 1
            page.locator("#map").screenshot(path=str(tmp_path / "explorer_grid.png"))
            page.uncheck("#grid-on")
            page.wait_for_function("(document.getElementById('map').layout.images || []).length === 0", timeout=30000)
            page.select_option("#method", "pca")
            page.wait_for_function("document.getElementById('map')._fullLayout.xaxis.title.text.startsWith('PC')",
                                   timeout=30000)
            pca = server.get("/api/runs/0/map?method=pca")
            mean, components = np.array(pca["placement"]["mean"]), np.array(pca["placement"]["components"])
            with torch.no_grad():
                test_codes = run.model.embed(run.splits.test.batch(torch.arange(len(pca["x"]))).images).double().numpy()
            np.testing.assert_allclose((test_codes - mean) @ components.T, np.c_[pca["x"], pca["y"]], atol=1e-6)
            page.wait_for_function(f"({marked})() !== null", timeout=30000)
            assert page.evaluate(marked) == pytest.approx(list((np.array(state) - mean) @ components.T), abs=1e-9)
            page.click("#prior")
            page.wait_for_function("state.gaussian.some(v => v !== 0)", timeout=30000)
            drawn = page.evaluate("state.gaussian")
            np.testing.assert_array_equal(settled("#decoded-a", decoded(drawn)), decoded(drawn))
            page.select_option("#method", "pca")
            page.wait_for_function("location.hash.includes('map=pca') && location.hash.includes('z=' + "
                                   "state.gaussian.map(v => +v.toFixed(4)).join('%2C'))", timeout=30000)
            address = page.url
            shared = dict(part.split("=", 1) for part in address.split("#", 1)[1].split("&"))
            z = [float(v) for v in shared["z"].split("%2C")]
            assert shared["run"] == "0" and np.allclose(z, drawn, atol=1e-4)
            again = browser.new_page(viewport={"width": 1400, "height": 1000})
            again.goto(address)
            again.wait_for_function("document.getElementById('latency').dataset.ms !== undefined", timeout=60000)
            assert again.input_value("#run") == "0" and again.input_value("#method") == "pca"
            page = again  # canvas() and settled() read this page now
            np.testing.assert_array_equal(settled("#decoded-a", decoded(z)), decoded(z))
            page.screenshot(path=str(tmp_path / "explorer_shared.png"), full_page=True)
    finally:
        server.stop()
    shots = os.environ.get("VAE_LAB_SCREENSHOTS")
    if shots:  # keep them to look at: VAE_LAB_SCREENSHOTS=folder pytest tests/test_explore.py
        for name in ("explorer.png", "explorer_steps_refused.png", "explorer_strip.png", "explorer_opening.png",
                     "explorer_hue.png", "explorer_shared.png", "explorer_traversal.png", "explorer_own.png",
                     "explorer_grid.png"):
            shutil.copy(tmp_path / name, Path(shots) / name.replace("explorer", "explorer_test", 1))
