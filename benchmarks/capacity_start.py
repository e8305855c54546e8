"""Why capacity control refuses the decoder's mean-image start: one capacity-controlled objective
trained from both starts, seed by seed.

Capacity control (Dupont 2018, ``model.capacity.enabled=true``) holds each part's KL near a target
that begins at 0 nats, so for its first steps the code carries almost nothing. ``vae-lab train``
refuses it together with ``trainer.start_at_mean_image=true``; this script trains that combination
anyway, beside PyTorch's initialisation, each in a run folder of its own under ``--runs`` (those
folders are the script's: their config.yaml holds a setting `vae-lab train` refuses; run again, the
script reads the runs that are complete and continues the others, as a sweep does), and prints
each run's test reconstruction, KL and code information.

The default setting is seeds/000's combined model (20 Gaussian dimensions + 5x65, conv, color MNIST,
10 epochs, the plain conv decoder) with the Gaussian target rising to 30 nats and the categorical one
to 5 over the run's 1,740 steps; OVERRIDES replace or extend it.

    python benchmarks/capacity_start.py --runs outputs/capacity-start --seeds 0,1,2 [--out summary.csv] [OVERRIDES...]
"""

import argparse
from pathlib import Path

from results_csv import add_out_option, add_training_options, refuse_existing_out, seeds, write_results
from vae_lab.compose import train_config
from vae_lab.training import train

SETTING = ["experiment=seed000_three_latents", "model=combined", "backbone.tint=false",
           "model.capacity.enabled=true", "model.capacity.continuous_max=30", "model.capacity.discrete_max=5",
           "model.capacity.steps=1740", "model.beta_warmup_steps=0", "eval.figures=false",
           "trainer.resume=true"]  # a complete run is read, an interrupted one continued
SHOWN = ["test/recon", "test/kl", "test/kl_disc", "test/nelbo", "test/code_mi", "test/cluster_acc",
         "test/color_probe_acc"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True,
                        help="the run folders' folder; given again, complete runs are read, not trained again")
    add_training_options(parser, "Hydra overrides after the default setting's")
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)

    results = []
    print(f"{'start':<14}{'seed':>5}" + "".join(f"{name.split('/')[1]:>18}" for name in SHOWN))
    for seed in seeds(args):
        for mean_image in (False, True):
            # Composed with PyTorch's initialisation, which the config's checks accept, then switched:
            # the refused combination is the point of the measurement.
            config = train_config([*SETTING, f"data.root={args.data_root}", "trainer.start_at_mean_image=false",
                                   *args.overrides, f"seed={seed}"])
            config.trainer.start_at_mean_image = mean_image
            start = "mean image" if mean_image else "pytorch"
            name = f"{start.replace(' ', '-')}-seed{seed}"
            metrics = train(config, str(args.runs / name))
            print(f"{start:<14}{seed:>5}" + "".join(f"{metrics.get(key, float('nan')):>18.3f}" for key in SHOWN))
            results.append((name, {"trainer.start_at_mean_image": str(mean_image), "seed": str(seed)}, metrics))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
