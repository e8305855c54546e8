"""How long a slider move of the latent explorer takes, as the browser sees it, and a screenshot.

Starts `vae-lab explore RUN` in a process of its own, opens the page in Debian's Chromium (driven by
Playwright; nothing downloaded), moves the first slider through 40 positions one update at a time,
and prints the median and 90th percentile of the time from the input event to the next painted frame
(request, decoding, drawing and the frame), beside the page's own count from request to drawing. Then it picks two points of the map, interpolates between them and saves a
screenshot of the whole page.

    python benchmarks/explorer_latency.py RUN [--screenshot PATH] [--color-by hue] [--chromium PATH]
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


# One slider move, timed in the page: from the input event to the frame that shows its image. The
# move's image is drawn when the page clears its busy flag; the frame after the next animation-frame
# callback is the one that paints it (a message posted from that callback runs once the frame is out).
MOVE_TO_FRAME = """(slider, value) => new Promise(resolve => {
    const latency = document.getElementById('latency');
    const started = performance.now();
    const drawn = new MutationObserver(() => {
        if (latency.dataset.busy) return;
        drawn.disconnect();
        requestAnimationFrame(() => {
            const after = new MessageChannel();
            after.port1.onmessage = () => resolve(performance.now() - started);
            after.port2.postMessage(null);
        });
    });
    drawn.observe(latency, {attributes: true, attributeFilter: ['data-busy']});
    slider.value = value;
    slider.dispatchEvent(new Event('input'));
})"""


def spread(times: list[float]) -> str:
    ranked = sorted(times)
    return (f"{statistics.median(times):.1f} ms (median; 90th percentile {ranked[int(0.9 * len(ranked))]:.1f}, "
            f"most {ranked[-1]:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--color-by", default="digit", choices=("digit", "hue"))
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    command = [sys.executable, "-m", "vae_lab", "explore", str(args.run)]
    server = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    url = server.stdout.readline().strip()
    if not url:
        sys.exit(server.stderr.read())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1050})
            page.goto(url)
            page.wait_for_selector("#map .scatterlayer .point", state="attached", timeout=120000)
            page.wait_for_function("document.getElementById('latency').dataset.ms !== undefined", timeout=60000)
            slider = page.locator("#controls input[type=range]").first
            times, decoding = [], []
            for k in range(args.moves if slider.count() else 0):
                value = -2 + 4 * k / (args.moves - 1)
                times.append(slider.evaluate(MOVE_TO_FRAME, value))
                decoding.append(float(page.evaluate("document.getElementById('latency').dataset.ms")))
            if times:
                print(f"{args.run}: a slider move takes {spread(times)} from the input to the next painted "
                      f"frame; request, decoding and drawing {spread(decoding)}; over {len(times)} moves")
            if args.screenshot:
                if args.color_by == "hue":
                    page.select_option("#color-by", "hue")
                    page.wait_for_timeout(800)
                for trace in (0, 7):  # two points of the map, by clicking them where the plot draws them
                    where = page.evaluate(f"""() => {{ const p = document.getElementById('map');
                        const t = p.data[{trace} % p.data.length];
                        const xa = p._fullLayout.xaxis, ya = p._fullLayout.yaxis;
                        const box = p.getBoundingClientRect();
                        return {{x: box.left + xa._offset + xa.l2p(t.x[3]),
                                 y: box.top + ya._offset + ya.l2p(t.y[3])}}; }}""")
                    page.mouse.click(where["x"], where["y"])
                    page.wait_for_timeout(700)
                page.select_option("#mode", "spherical")
                page.click("#go")
                page.wait_for_selector("#strip canvas", timeout=20000)
                page.mouse.move(5, 5)
                page.wait_for_timeout(700)
                page.screenshot(path=str(args.screenshot), full_page=True)
            browser.close()
    finally:
        server.send_signal(2)  # Ctrl-C
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
