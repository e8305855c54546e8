"""hydra/launcher=slurm: Hydra's submitit launcher for SLURM, with vae-lab's handling of jobs that die,
time out or are cancelled."""
