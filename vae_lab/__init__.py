"""vae-lab: config-driven experiments on the latent spaces of variational autoencoders."""

import os

# OpenMP threads that wait for work spin on their core by default. Beside another busy process they
# spin on cores they do not get, and a training step slows down many times over; passive waiting
# costs little on an idle machine (README, "Sharing the machine"). Set before torch loads OpenMP:
# this package imports torch only below this line. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
