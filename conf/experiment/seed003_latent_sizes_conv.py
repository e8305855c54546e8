"""seeds/003 on the conv backbone, as `vae-lab reproduce` reports it: the write-up's verdict and
figures (seed003_latent_sizes.py), for the cheaper recipe seed003_latent_sizes_conv.yaml."""

import dataclasses

from vae_lab.reproduce import load_write_up

WRITE_UP = dataclasses.replace(
    load_write_up("seed003_latent_sizes"),
    title="seeds/003 with the conv backbone: latent size 2, 4 and 16, and image-quality metrics")
