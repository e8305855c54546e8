"""hydra/sweeper=vae_lab_optuna: a persistent, resumable Optuna study as a Hydra sweeper."""
