"""hydra/launcher=stacked: vae-lab's launcher that trains the stackable runs of a sweep together."""
