"""The files of vae_lab/ a default run executes, from its composed config to metrics.json, by a trace.

    python tools/run_files.py            # the list, in the order the run first enters each file
    python tools/run_files.py --write    # and the table of docs/architecture.md made to match it

A real run (the default config, one epoch, figures on) is traced with ``sys.setprofile``: a file
counts when one of its functions is called, not when it is merely imported. vae_lab/metrics/ and
vae_lab/figures/ count as one step each. The table's descriptions are kept by file; a file the trace
adds gets a placeholder to write, and one it no longer finds is dropped.
"""

import os
import re
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vae_lab"
PAGE = ROOT / "docs" / "architecture.md"
GROUPED = ("metrics", "figures")  # folders that count as one step
BEGIN, END = "<!-- run-files: begin (tools/run_files.py) -->", "<!-- run-files: end -->"


def step(filename: str) -> "str | None":
    """The step a source file belongs to (``vae_lab/loop.py``, ``vae_lab/metrics/``), or None."""
    try:
        relative = Path(filename).resolve().relative_to(PACKAGE)
    except ValueError:
        return None
    if relative.parts[0] in GROUPED:
        return f"vae_lab/{relative.parts[0]}/"
    return f"vae_lab/{relative.as_posix()}"


def traced_run(data_root: str, *overrides: str) -> list[str]:
    """Train a default run for one epoch under the trace; the steps in the order it first entered them."""
    from vae_lab.api import train_config
    from vae_lab.training import train

    config = train_config(["trainer.epochs=1", f"data.root={data_root}", *overrides])
    seen: dict[str, None] = {}
    names: dict[str, "str | None"] = {}

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_name != "<module>":  # a function, not an import
            filename = frame.f_code.co_filename
            if filename not in names:
                names[filename] = step(filename)
            if names[filename] is not None:
                seen.setdefault(names[filename])

    with tempfile.TemporaryDirectory() as folder:
        threading.setprofile(profile)
        sys.setprofile(profile)
        try:
            train(config, str(Path(folder) / "run"))
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
    return list(seen)


def page_rows(text: str) -> list[tuple[str, str]]:
    """(file, what happens there) of the page's run-files table."""
    block = text[text.index(BEGIN):text.index(END)]
    return [(m.group(1), m.group(2).strip()) for m in re.finditer(r"^\| \d+ \| `([^`]+)` \|(.*)\|$", block, re.M)]


def table(steps: list[str], described: dict[str, str]) -> str:
    rows = [f"| {i} | `{name}` | {described.get(name, 'TODO: what happens here')} |" for i, name in enumerate(steps, 1)]
    return "\n".join([BEGIN, "", "| # | file | what happens there |", "| --- | --- | --- |", *rows, "", END])


def main() -> None:
    data_root = os.environ.get("VAE_LAB_DATA", str(ROOT.parent / "shared" / "data"))
    steps = traced_run(data_root)
    print("\n".join(steps))
    print(f"{len(steps)} steps", file=sys.stderr)
    if "--write" in sys.argv:
        text = PAGE.read_text()
        described = dict(page_rows(text))
        start, end = text.index(BEGIN), text.index(END) + len(END)
        PAGE.write_text(text[:start] + table(steps, described) + text[end:])


if __name__ == "__main__":
    main()
