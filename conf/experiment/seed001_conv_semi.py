"""seeds/001 as `vae-lab reproduce` reports it (the recipe: seed001_conv_semi.yaml)."""

from vae_lab.reproduce import Figure, Runs, WriteUp


def verdict(runs: Runs) -> str:
    plain = runs.get("test/knn_acc", model="continuous")
    semi = runs.get("test/knn_acc", model="semi")
    accuracy = runs.get("test/class_acc", model="semi")
    asked = runs.get("samples/label_acc", model="semi")
    holds = "Holds" if semi.above(plain) and asked.mean - asked.sd > 0.5 else "Does not hold"
    return (f"{holds}: with the classifier on the 2-D latent, digits separate further (5-NN accuracy in "
            f"the latent plane {semi:%} against {plain:%} without it; the classifier itself "
            f"{accuracy:%} on test), and a sample generated for a chosen digit is read as that digit "
            f"{asked:%} of the time.")


WRITE_UP = WriteUp(
    "seeds/001: a convolutional VAE and its semi-supervised variant",
    "With a classifier on the 2-D latent, digit classes separate in latent space, and a digit can "
    "be generated on request.",
    ("test/nelbo", "test/mse", "test/probe_acc", "test/knn_acc", "test/class_acc", "samples/label_acc"),
    (Figure("Latent scatter by digit, without the classifier", "latent_scatter.png", {"model": "continuous"}),
     Figure("Latent scatter by digit, with the classifier", "latent_scatter.png", {"model": "semi"}),
     Figure("Decoded grid over the latent plane, without the classifier", "latent_traversal.png",
            {"model": "continuous"}),
     Figure("Generated digits, one row per requested label", "conditional_samples.png", {"model": "semi"}),
     Figure("Test reconstructions", "reconstructions.png", {"model": "continuous"})),
    verdict,
)
