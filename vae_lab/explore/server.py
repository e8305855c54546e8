"""The latent explorer's web server: one small static page (static/index.html) and a JSON API over
:class:`vae_lab.explore.latent.Explorer`, served by Starlette under uvicorn on 127.0.0.1.

Images travel as base64 of their raw uint8 pixels (height x width x channels, a few kilobytes), which
the page paints on a canvas: no PNG to encode per slider move. The map is drawn by plotly.js, served
from the plotly package itself, so that the page works offline.
"""

import base64
import json
import logging
import math
import time
from importlib.resources import files
from pathlib import Path
from typing import Callable

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from vae_lab.errors import UserError
from vae_lab.explore.latent import Explorer
from vae_lab.metrics.traversal import TRAVERSAL_VALUES

STEPS_MOST = 64  # decodings in one interpolation strip

log = logging.getLogger("vae_lab.explore")


def pixels(image: np.ndarray) -> dict:
    return {"data": base64.b64encode(np.ascontiguousarray(image).tobytes()).decode(), "shape": list(image.shape)}


class Runs:
    """The runs a page may explore, each opened (its model and map codes) on first use."""

    def __init__(self, runs: dict[str, tuple[Path, str]], open_run: Callable[[Path], Explorer]):
        self.listing = runs  # id: (run folder, label)
        self.open_run = open_run
        self.opened: dict[str, Explorer] = {}

    def __getitem__(self, run_id: str) -> Explorer:
        if run_id not in self.listing:
            raise KeyError(run_id)
        if run_id not in self.opened:
            self.opened[run_id] = self.open_run(self.listing[run_id][0])
        return self.opened[run_id]


def app(runs: Runs) -> Starlette:
    static = files("vae_lab.explore") / "static"
    import plotly

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

    def page(request: Request) -> Response:
        return FileResponse(str(static / "index.html"))

    def script(request: Request) -> Response:
        return FileResponse(str(plotly_js), media_type="text/javascript")

    def listing(request: Request) -> Response:
        return JSONResponse([{"id": run_id, "folder": str(folder), "label": label}
                             for run_id, (folder, label) in runs.listing.items()])

    def explorer(request: Request) -> Explorer:
        return runs[request.path_params["run"]]

    def layout(request: Request) -> Response:
        found = explorer(request)
        return JSONResponse({**found.layout(), "digit_points": found.digit_codes(),
                             "caption": describe(found)})

    def map_points(request: Request) -> Response:
        found = explorer(request)
        points, names = found.map(request.query_params.get("method", "pca"))
        return JSONResponse({"x": points[:, 0].tolist(), "y": points[:, 1].tolist(), "axes": names,
                             "placement": found.placement(request.query_params.get("method", "pca")),
                             "digits": found.labels.tolist(),
                             "hue_bins": found.hue_bins.tolist() if found.hue_bins is not None else None,
                             "tints": found.tints.round(3).tolist() if found.tints is not None else None})

    def test_image(request: Request) -> Response:
        found = explorer(request)
        index = int(request.path_params["index"])
        image, rebuilt = found.test_image(index)
        return JSONResponse({"image": pixels(image), "reconstruction": pixels(rebuilt), "point": found.point_of(index),
                             "digit": int(found.labels[index]),
                             "hue_bin": int(found.hue_bins[index]) if found.hue_bins is not None else None})

    def shown_images(found: Explorer, nearest: list[tuple[int, float]]) -> list[dict]:
        """Test images as the page shows them beside a point: each with its number, distance and digit."""
        return [{"index": i, "distance": d, "image": pixels(found.test_image(i)[0]), "digit": int(found.labels[i])}
                for i, d in nearest]

    def neighbours(request: Request) -> Response:
        found = explorer(request)
        return JSONResponse(shown_images(found, found.neighbours(int(request.path_params["index"]))))

    async def decode(request: Request) -> Response:
        body = await request.json()
        started = time.perf_counter()
        found = explorer(request)
        image = found.decode(found.code(*point(body, "the body"))[None])[0]
        return JSONResponse({"image": pixels(image), "ms": 1000 * (time.perf_counter() - started)})

    async def grid(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError(f"the body: expected an object with point, axes, x, y and cells, got {shown(body)}")
        found = explorer(request)
        ranges = [body.get(name) for name in ("x", "y")]
        axes, cells = body.get("axes"), body.get("cells")
        if not (all(isinstance(r, list) and len(r) == 2 and all(type(v) in (int, float) for v in r) for r in ranges)
                and isinstance(axes, list) and all(type(a) is int for a in axes) and type(cells) is int):
            raise ValueError(f"the body: expected axes [two integers], x and y [low, high] and cells, got {shown(body)}")
        image = found.grid(found.code(*point(body.get("point"), "point")), tuple(axes), tuple(ranges[0]),
                           tuple(ranges[1]), cells)
        return JSONResponse({"image": pixels(image)})

    async def encode(request: Request) -> Response:
        body = await request.json()
        found = explorer(request)
        encoded = found.encode(image_of(body))
        return JSONResponse({"point": encoded["point"], "reconstruction": pixels(encoded["reconstruction"]),
                             "neighbours": shown_images(found, encoded["neighbours"])})

    async def traverse(request: Request) -> Response:
        body = await request.json()
        found = explorer(request)
        rows, left_out = found.traversal(found.code(*point(body, "the body")))
        return JSONResponse({"values": TRAVERSAL_VALUES.tolist(), "left_out": left_out,
                             "rows": [{**row, "images": [pixels(image) for image in row["images"]]} for row in rows]})

    async def interpolate(request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError(f"the body: expected an object with start, end and steps, got {shown(body)}")
        found = explorer(request)
        steps = body.get("steps", 10)
        if type(steps) is not int or not 2 <= steps <= STEPS_MOST:  # said, not silently clamped
            raise ValueError(f"steps={shown(steps)}: expected 2 to {STEPS_MOST} decodings in one strip")
        ends = [found.code(*point(body.get(end), end)) for end in ("start", "end")]
        if body.get("from_images"):  # the images' own codes (category probabilities kept)
            chosen = body["from_images"]
            if not (isinstance(chosen, list) and len(chosen) == 2 and all(type(i) is int for i in chosen)):
                raise ValueError(f"from_images={shown(chosen)}: expected two test image numbers")
            ends = [found.codes[index] for index in chosen]
        images = found.interpolate(*ends, steps, str(body.get("mode", "linear")))
        return JSONResponse({"images": [pixels(image) for image in images]})

    async def failed(request: Request, error: Exception) -> Response:
        return JSONResponse({"error": str(error)}, status_code=400)

    async def unopened(request: Request, error: Exception) -> Response:
        # A run that cannot be opened (a damaged checkpoint, data moved): one line here and on the page.
        log.warning("%s", error)
        return JSONResponse({"error": str(error)}, status_code=409)

    return Starlette(routes=[
        Route("/", page), Route("/plotly.min.js", script), Route("/api/runs", listing),
        Route("/api/runs/{run}/layout", layout), Route("/api/runs/{run}/map", map_points),
        Route("/api/runs/{run}/test/{index:int}", test_image),
        Route("/api/runs/{run}/test/{index:int}/neighbours", neighbours),
        Route("/api/runs/{run}/decode", decode, methods=["POST"]),
        Route("/api/runs/{run}/interpolate", interpolate, methods=["POST"]),
        Route("/api/runs/{run}/traversal", traverse, methods=["POST"]),
        Route("/api/runs/{run}/encode", encode, methods=["POST"]),
        Route("/api/runs/{run}/grid", grid, methods=["POST"]),
    ], exception_handlers={ValueError: failed, KeyError: failed, IndexError: failed, UserError: unopened})


def point(value, where: str) -> tuple[list[float], list[int]]:
    """A point of the latent space as the page sends it, checked: {"gaussian": [finite numbers],
    "categories": [integers]}."""
    numbers = value.get("gaussian") if isinstance(value, dict) else None
    categories = value.get("categories") if isinstance(value, dict) else None
    if not (isinstance(numbers, list) and all(type(v) in (int, float) and math.isfinite(v) for v in numbers)
            and isinstance(categories, list) and all(type(c) is int for c in categories)):
        raise ValueError(f'{where}: expected {{"gaussian": [numbers], "categories": [integers]}}, got {shown(value)}')
    return numbers, categories


def image_of(body) -> np.ndarray:
    """An image as the page sends it, {"image": {"data": base64 of raw uint8 pixels, "shape": [h, w, c]}}
    (as :func:`pixels` writes them), checked."""
    image = body.get("image") if isinstance(body, dict) else None
    shape = image.get("shape") if isinstance(image, dict) else None
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(n) is int and n > 0 for n in shape)
            and isinstance(image.get("data"), str)):
        raise ValueError(f'the body: expected {{"image": {{"data": base64, "shape": [h, w, c]}}}}, got {shown(body)}')
    try:
        raw = base64.b64decode(image["data"], validate=True)
    except ValueError:
        raise ValueError("the image's data: not base64") from None
    if len(raw) != math.prod(shape):
        raise ValueError(f"the image's data: {len(raw)} bytes for a shape of {math.prod(shape)}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def shown(value) -> str:
    """A request's value as said back in an error: its JSON, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(found: Explorer) -> str:
    from vae_lab.figures import describe as caption

    return caption(found.run.config)

