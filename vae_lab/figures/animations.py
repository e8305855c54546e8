"""Animations: an interpolation through the codes of several digits (seeds/004), and the latent space
and reconstructions over training, one frame per epoch up to EVOLUTION_FRAMES (seeds/003)."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from sklearn.decomposition import PCA

from vae_lab.data import ImageSet
from vae_lab.figures.latent import code_parts
from vae_lab.files import atomic_write
from vae_lab.figures.style import image_grid, render, scatter_by_label, show_grid

SNAPSHOT_POINTS = 500  # test images whose codes each frame of training_evolution.gif shows
SNAPSHOT_IMAGES = 8  # test images whose reconstructions it shows
EVOLUTION_FRAMES = 40  # at most; a longer run shows that many epochs, evenly spaced, first and last among them
INTERPOLATION_STEPS = 16  # frames between two digits
TILE_PIXELS = 256  # about how wide each of an interpolation frame's three images is drawn, whatever its size


def snapshot(model, test: ImageSet) -> dict[str, torch.Tensor]:
    """What training_evolution.gif keeps of one epoch: the codes of a fixed test subset (half
    precision) and the reconstructions of a fixed batch (uint8), small enough to keep every epoch's."""
    codes = torch.cat([model.embed(b.images).float() for b in test.batches(SNAPSHOT_POINTS, SNAPSHOT_POINTS)])
    images = test.batch(torch.arange(SNAPSHOT_IMAGES, device=test.device)).images
    rebuilt = (model.reconstruct(images).clamp(0, 1) * 255).round().to(torch.uint8)
    return {"codes": codes.half().cpu(), "reconstructions": rebuilt.cpu()}


def save_gif(frames: list[np.ndarray], path: Path, seconds_per_frame: float) -> Path:
    """RGB ``frames`` as a looping GIF. Grey frames (every MNIST interpolation) are kept as grey levels,
    which a GIF holds as they are; colored ones get a palette each by fast octree quantization, several
    times faster than PIL's default median cut and as good for these few flat colors."""
    if all((frame[..., :1] == frame).all() for frame in frames):
        images = [Image.fromarray(np.ascontiguousarray(frame[..., 0])) for frame in frames]
    else:
        images = [Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE) for frame in frames]
    atomic_write(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                duration=int(seconds_per_frame * 1000), loop=0), binary=True)
    return path


def evenly_spaced(count: int, most: int) -> np.ndarray:
    """Up to ``most`` of the indices 0 .. count - 1, evenly spaced, the first and the last among them."""
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(int))


def training_evolution(snapshots: list[dict], spec, test: ImageSet, path: Path, caption: str) -> Path:
    """One frame per epoch (or per one of EVOLUTION_FRAMES evenly spaced epochs): the fixed test subset
    in latent space (the first latent part; PCA fitted on the last epoch above two dimensions, so axes
    stay put) and the fixed batch's reconstructions."""
    labels = test.labels[:SNAPSHOT_POINTS].cpu().numpy()
    originals = test.batch(torch.arange(SNAPSHOT_IMAGES, device=test.device)).images.cpu()
    epochs = evenly_spaced(len(snapshots), EVOLUTION_FRAMES)
    shown = [snapshots[e] for e in epochs]
    parts = [code_parts(spec, s["codes"].float().numpy())[0] for s in shown]
    part_name, last = parts[-1]
    if last.shape[1] > 2:
        pca = PCA(n_components=2).fit(last)
        points = [pca.transform(values) for _, values in parts]
        axis_labels = ["PC 1 (of the last epoch)", "PC 2 (of the last epoch)"]
    else:
        points = [np.column_stack([values[:, 0], values[:, -1] if values.shape[1] == 2 else np.zeros(len(values))])
                  for _, values in parts]
        axis_labels = ["$z_1$", "$z_2$" if last.shape[1] == 2 else "(one dimension)"]
    every = np.concatenate(points)
    low, high = np.percentile(every, 0.5, axis=0), np.percentile(every, 99.5, axis=0)
    margin = 0.05 * (high - low)
    # One figure for every frame: laid out (titles fitted) for the first, then only its points, pictures
    # and epoch change, which costs a fraction of laying out a new figure per frame.
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1.15, 1]},
                                      constrained_layout=True)
    scatter_by_label(left, points[0], labels, test.info, legend=test.info.labelled)
    left.set_xlim(low[0] - margin[0], high[0] + margin[0])
    left.set_ylim(low[1] - margin[1], high[1] + margin[1])
    left.set_xlabel(axis_labels[0])
    left.set_ylabel(axis_labels[1])
    left.set_title(f"{part_name} of {len(labels)} test images", fontsize=9)
    digits = [labels == label for label in range(len(left.collections))]  # scatter_by_label: one per class
    grid = lambda shot: image_grid(torch.cat([originals, shot["reconstructions"].float() / 255]),  # noqa: E731
                                   SNAPSHOT_IMAGES // 2)
    show_grid(right, grid(shown[0]))
    right.set_title("test images (top) and their reconstructions (bottom)", fontsize=9)
    title = fig.suptitle(f"Epoch {len(snapshots)} of {len(snapshots)}\n{caption}", fontsize=10)  # the longest
    frames = []
    try:
        render(fig, dpi=100)
        fig.set_layout_engine("none")  # keeps the first frame's layout: every frame's would be the same
        # What changes from frame to frame is drawn over a picture of the rest, taken once (blitting).
        changing = [*left.collections, right.images[0], title]
        for artist in changing:
            artist.set_animated(True)
        fig.canvas.draw()
        background = fig.canvas.copy_from_bbox(fig.bbox)
        for epoch, frame_points, shot in zip(epochs + 1, points, shown):
            for collection, mine in zip(left.collections, digits):
                collection.set_offsets(frame_points[mine])
            right.images[0].set_data(grid(shot))
            title.set_text("\n".join([f"Epoch {epoch} of {len(snapshots)}", *title.get_text().split("\n")[1:]]))
            fig.canvas.restore_region(background)
            for artist in changing:
                fig.draw_artist(artist)
            frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    finally:
        plt.close(fig)
    return save_gif(frames, path, seconds_per_frame=0.7)


def interpolation(model, test: ImageSet, path: Path, caption: str, stops: int = 5) -> Path:
    """Straight lines in latent space through the codes of test images of ``stops`` different digits
    (classes; the first test images where the data is unlabelled); each frame shows the image decoded
    on the way between the two images it travels from and to."""
    labels, info = test.labels.cpu(), test.info
    firsts = [int((labels == d).nonzero()[0]) for d in labels.unique().tolist()]
    chosen = sorted(firsts)[:stops] if info.labelled else list(range(min(stops, len(test))))
    images = test.batch(torch.tensor(chosen, device=test.device)).images
    codes = model.embed(images).float()
    steps = torch.linspace(0, 1, INTERPOLATION_STEPS + 1)[:-1].to(codes.device)
    scale = max(2, round(TILE_PIXELS / (images.shape[-1] + 4)))  # MNIST's 28 pixels: 8 screen pixels each
    frames = []
    for i in range(len(chosen) - 1):
        path_codes = (1 - steps[:, None]) * codes[i] + steps[:, None] * codes[i + 1]
        start, end = (f"{info.label} {info.class_names[labels[j]]}" if info.labelled else f"test image {j}"
                      for j in (chosen[i], chosen[i + 1]))
        for t, image in zip(steps.tolist(), model.decode(path_codes).cpu()):
            frames.append(_interpolation_frame(images[i].cpu(), image, images[i + 1].cpu(), start, end, t, caption,
                                               scale))
    return save_gif(frames, path, seconds_per_frame=0.12)


def _interpolation_frame(start: torch.Tensor, between: torch.Tensor, end: torch.Tensor, start_name: str,
                         end_name: str, t: float, caption: str, scale: int = 8) -> np.ndarray:
    """[start | decoded | end] enlarged, each panel named under it (``start_name``: e.g. 'digit 3'),
    with a title and the model's caption (wrapped to the frame) above: drawn with PIL, milliseconds a
    frame."""
    tiles = [Image.fromarray((image_grid(image.unsqueeze(0), 1) * 255).round().astype(np.uint8)).resize(
        (scale * (image.shape[-1] + 4),) * 2, Image.NEAREST) for image in (start, between, end)]
    side, gap = tiles[0].width, 16
    width = 3 * side + 4 * gap
    title_font, caption_font, label_font = (ImageFont.load_default(size=size) for size in (18, 13, 14))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    caption_lines = _wrap(caption, caption_font, width - 2 * gap, measure)
    top = 8 + 26 + 17 * len(caption_lines) + 8
    canvas = Image.new("RGB", (width, top + side + 34), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, 8), f"Interpolation from {start_name} to {end_name}: t = {t:.2f}", fill="black",
              font=title_font)
    for row, line in enumerate(caption_lines):
        draw.text((gap, 34 + 17 * row), line, fill=(80, 80, 80), font=caption_font)
    names = (f"start: {start_name}", f"decoded at t = {t:.2f}", f"end: {end_name}")
    for k, (tile, name) in enumerate(zip(tiles, names)):
        left = gap + k * (side + gap)
        canvas.paste(tile, (left, top))
        draw.text((left + (side - measure.textlength(name, font=label_font)) / 2, top + side + 8), name,
                  fill="black", font=label_font)
    return np.asarray(canvas)


def _wrap(text: str, font, room: float, measure: ImageDraw.ImageDraw) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``room`` pixels in ``font``."""
    lines = [""]
    for word in text.split(" "):
        candidate = f"{lines[-1]} {word}".strip()
        if lines[-1] and measure.textlength(candidate, font=font) > room:
            lines.append(word)
        else:
            lines[-1] = candidate
    return lines
