"""The checkpoint format: what checkpoints/last.pt and checkpoints/best.pt hold, how a member is
saved into them and continued from them, and how they are written and read.

``last.pt`` holds everything a resumed run needs to end exactly as an uninterrupted one: weights,
Adam's state, the loss hooks' state, every generator, the history and the snapshots. ``best.pt`` holds
the weights with the lowest validation loss, with what is needed to rebuild their model.
"""

import io
import zipfile
from pathlib import Path

import torch

from vae_lab.config import as_dict
from vae_lab.errors import DamagedFile
from vae_lab.files import atomic_writes

CHECKPOINT_FORMAT = 1


def save_checkpoints(states: dict[Path, dict]) -> None:
    """Checkpoints written as one step (an epoch's best.pt and last.pt): a full disk leaves both as
    they were, so that the run resumes where they say. Serialised in memory first: torch.save's own
    writer reports a full disk as an anonymous RuntimeError, and Python's file writes raise the
    OSError (ENOSPC) that the CLI explains."""
    buffers = {}
    for path, state in states.items():
        buffers[path] = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buffers[path])
    atomic_writes([(path, lambda f, b=buffer: f.write(b.getbuffer()), True) for path, buffer in buffers.items()])


def load_checkpoint(path: Path, device: torch.device | str = "cpu", remedy: str = "") -> dict:
    """A checkpoint holds only tensors and plain Python values, so it loads with weights_only=True:
    a file that holds anything else (a crafted pickle) is refused before any of it runs. Its zip
    checksums are verified first: a flipped bit in the weights would otherwise load without a word."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
        if damaged is not None:
            raise DamagedFile(path, f"damaged: {damaged} fails its checksum",
                              remedy or "it was changed after vae-lab wrote it")
        state = torch.load(path, map_location=device, weights_only=True)
    except (FileNotFoundError, DamagedFile):
        raise
    except zipfile.BadZipFile:
        raise DamagedFile(path, "truncated or not a PyTorch file",
                          remedy or "it was not written by vae-lab, or not completely") from None
    except Exception as error:  # noqa: BLE001  foreign objects, anything else: all one answer
        raise DamagedFile(path, _load_failure(error), remedy or "it was not written by vae-lab, or not completely") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DamagedFile(path, "not a vae-lab checkpoint", remedy or "it was not written by vae-lab")
    return state


def _load_failure(error: Exception) -> str:
    text = str(error)
    if "Weights only load failed" in text or "Unsupported global" in text:
        return "it holds Python objects, not only tensors, so it was not loaded"
    if "central directory" in text or "zip archive" in text or isinstance(error, EOFError):
        return "truncated or not a PyTorch file"
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def best_state(member, epoch: int, splits) -> dict:
    """checkpoints/best.pt: the member's weights after ``epoch``, with what rebuilds their model."""
    return {"epoch": epoch, "model": member.model.state_dict(), "image_shape": list(splits.image_shape),
            "classes": len(splits.info.class_names), "config": as_dict(member.config), "data": splits.fingerprint}


def resumable_state(member, fingerprint: dict) -> dict:
    """checkpoints/last.pt: everything a resumed run needs to end exactly as an uninterrupted one."""
    cuda = member.model.device.type == "cuda"
    return {
        "epoch": member.epoch,
        "model": member.model.state_dict(),
        "optimizer": member.optimizer_state,
        **{hook.name: hook.state_dict() for hook in member.loss_hooks},  # a discriminator and its optimizer
        "rng": {"torch": torch.get_rng_state(), "shuffle": member.shuffle.get_state(),
                "noise": member.noise.get_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
        "history": member.history,
        "snapshots": member.snapshots,
        "best": member.best,
        "config": as_dict(member.config),
        "data": fingerprint,
    }


def resume(member, checkpoint: dict) -> None:
    """Continue a member from its checkpoints/last.pt. The process's own generators are restored
    too: only a model that cannot stack draws from them, and such a model trains alone."""
    member.model.load_state_dict(checkpoint["model"])
    member.optimizer_state = checkpoint["optimizer"]
    for hook in member.loss_hooks:
        hook.load_state_dict(checkpoint.get(hook.name, {}))
    member.history, member.best = checkpoint["history"], checkpoint["best"]
    member.snapshots = checkpoint["snapshots"]
    rng = checkpoint["rng"]
    member.shuffle.set_state(rng["shuffle"].cpu())
    if "noise" in rng:
        member.noise.set_state(rng["noise"].cpu())
    torch.set_rng_state(rng["torch"].cpu())
    if member.model.device.type == "cuda" and rng["cuda"]:
        torch.cuda.set_rng_state_all([state.cpu() for state in rng["cuda"]])
