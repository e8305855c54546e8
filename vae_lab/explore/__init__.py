"""`vae-lab explore RUN_OR_SWEEP`: a trained model's latent space, live in the browser.

The page (static/index.html) maps the test codes (the two coordinates with the most KL, PCA or
t-SNE; colored by digit or hue bin), shows any test image beside its reconstruction, decodes the
point its sliders and selectors set as they move, interpolates between two test images, and for a
sweep folder decodes the same point with two runs side by side. An optional extra:
``pip install 'vae-lab[explore]'`` (Starlette, uvicorn and plotly).
"""

import errno
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from vae_lab.errors import UserError

EXTRA = "pip install 'vae-lab[explore]'"


def listing(path: Path) -> dict[str, tuple[Path, str]]:
    """The runs at ``path``: a run folder, or a sweep folder's runs that finished (by their settings)."""
    from vae_lab.runs import RunDir, is_replicate
    from vae_lab.summary import read_runs, swept_keys

    path = Path(path).expanduser().resolve()
    if (path / "checkpoints").is_dir() or (path / "config.yaml").is_file():
        run = RunDir.open(path)
        return {"0": (run.path, run.path.name)}
    runs = [r for r in read_runs(path) if r.status == "complete"] if path.is_dir() else []
    if not runs:
        raise UserError(f"{path}: neither a run folder (checkpoints/best.pt) nor a sweep folder with a finished "
                        "run; give the folder of a vae-lab train run, or of a sweep")
    swept = swept_keys(runs)
    keys = [k for k in swept if not is_replicate(k)] + [k for k in swept if is_replicate(k)]
    return {r.name: (r.path, f"run {r.name}: " + (", ".join(f"{k.rsplit('.', 1)[-1]}={r.overrides[k]}"
                                                             for k in keys if k in r.overrides) or "as configured"))
            for r in runs}


def bound_socket(host: str, port: Optional[int]) -> socket.socket:
    """A listening socket on ``port`` (None: a free one), or one line when the port is taken."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may take its port back at once
    # Each answer goes out as it is written: with Nagle's algorithm a small answer written in two
    # parts waits for the browser's delayed acknowledgement, 40 ms a slider move.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port or 0))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use; give another with --port, or leave --port out "
                            "for a free one") from None
        raise UserError(f"cannot listen on {host}:{port or 0}: {error.strerror}") from None
    sock.listen(64)
    return sock


def serve(path: Path, port: Optional[int] = None, host: str = "127.0.0.1", device: str = "cpu",
          data_root: Optional[str] = None, ready: Callable[[str], None] = print) -> None:
    """Serve the explorer of the run(s) at ``path`` until interrupted; ``ready`` gets the page's
    address once the first run is open and the server listens."""
    try:
        import plotly  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as missing:
        raise UserError(f"vae-lab explore needs the explore extra ({missing.name} is not installed): {EXTRA}") from None

    from vae_lab.device import resolve_device
    from vae_lab.explore.latent import Explorer
    from vae_lab.explore.server import Runs, app
    from vae_lab.reporting import load_run

    where = resolve_device(device, "--device")
    said = logging.getLogger("vae_lab.explore")  # what takes seconds, on stderr: the address comes after it
    if not said.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("vae-lab explore: %(message)s"))
        said.addHandler(handler)
        said.setLevel(logging.INFO)

    def open_run(folder: Path) -> Explorer:
        said.info("opening %s: its model, and its test images' codes", folder)
        started = time.perf_counter()
        found = Explorer(load_run(folder, device=where, data_root=data_root, data_option="--data-root PATH"))
        said.info("%s is open (%.1f s)", folder, time.perf_counter() - started)
        return found

    runs = Runs(listing(path), open_run)
    runs[next(iter(runs.listing))]  # open the first run now: a damaged one or missing data is one line
    sock = bound_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(app(runs), log_level="warning", lifespan="off"))
    shown = f"[{host}]" if ":" in host else host
    ready(f"http://{shown}:{sock.getsockname()[1]}/")
    server.run(sockets=[sock])
