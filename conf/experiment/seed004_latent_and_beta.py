"""seeds/004 as `vae-lab reproduce` reports it (the recipe: seed004_latent_and_beta.yaml)."""

from vae_lab.reproduce import Figure, Runs, WriteUp


def verdict(runs: Runs) -> str:
    knn = {d: runs.get("test/knn_acc", latent_dim=d, beta="1") for d in ("2", "64")}
    at = {b: {m: runs.get(m, latent_dim="64", beta=b) for m in ("test/mse", "samples/fd", "samples/class_entropy")}
          for b in ("0", "1", "10")}
    clusters = knn["64"].above(knn["2"])
    beta0 = at["0"]["test/mse"].below(at["1"]["test/mse"]) and at["0"]["samples/fd"].above(at["1"]["samples/fd"])
    beta10 = (at["10"]["test/mse"].above(at["1"]["test/mse"])
              and at["10"]["samples/class_entropy"].below(at["1"]["samples/class_entropy"]))
    holds = {3: "Holds", 0: "Does not hold"}.get(clusters + beta0 + beta10, "Holds in part")
    worse = "worse" if at["0"]["samples/fd"].above(at["1"]["samples/fd"]) else "not clearly worse"
    return (f"{holds}: latent 64 clusters digits {'better' if clusters else 'no better, beyond the spread,'} than "
            f"latent 2 (5-NN accuracy {knn['64']:%} vs {knn['2']:%}); at latent 64, beta 0 reconstructs best "
            f"(test MSE {at['0']['test/mse']:.4f} vs {at['1']['test/mse']:.4f} at beta 1) but its prior samples "
            f"are {worse} (Frechet distance {at['0']['samples/fd']:.0f} vs {at['1']['samples/fd']:.0f}), and beta 10 "
            f"blurs (MSE {at['10']['test/mse']:.4f}) with digit-class entropy of its samples "
            f"{at['10']['samples/class_entropy']:.2f} vs {at['1']['samples/class_entropy']:.2f} nats at beta 1.")


WRITE_UP = WriteUp(
    "seeds/004: latent 2 vs 64, beta 0 vs 10",
    "Latent 64 clusters digits better than latent 2; beta 0 reconstructs well but its prior samples "
    "are garbage; beta 10 is blurry with little diversity.",
    ("test/nelbo", "test/kl", "test/mse", "test/knn_acc", "samples/fd", "samples/class_entropy"),
    (Figure("Rate and distortion of every run", "rate_distortion.png"),
     Figure("Prior samples and test reconstructions of every run", "montage.png"),
     Figure("Latent 2, beta 1: the latent plane", "latent_scatter.png", {"latent_dim": "2", "beta": "1"}),
     Figure("Latent 64, beta 1: PCA and t-SNE", "latent_scatter.png", {"latent_dim": "64", "beta": "1"}),
     Figure("Latent 64, beta 1: samples near training images' posteriors", "samples_posterior.png",
            {"latent_dim": "64", "beta": "1"}),
     Figure("Latent 64, beta 0: prior samples", "samples.png", {"latent_dim": "64", "beta": "0"}),
     Figure("Latent 64, beta 10: prior samples", "samples.png", {"latent_dim": "64", "beta": "10"}),
     Figure("Latent 64, beta 1: interpolation between two digits", "interpolation.gif",
            {"latent_dim": "64", "beta": "1"})),
    verdict,
)
