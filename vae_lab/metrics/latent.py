"""How a model uses its latent: active units, KL per dimension and variable, code usage."""

import torch

from vae_lab.data import ImageSet

ACTIVITY_THRESHOLD = 0.01  # Burda et al. (2016): a unit is active if Cov_x(E_q[z_d]) exceeds this


def latent_statistics(model, data: ImageSet, batch_size: int) -> dict:
    """``active_units`` and each unit's activity (variance of its posterior mean across images),
    mean KL per Gaussian dimension and per categorical variable, and for categorical variables the
    perplexity of their aggregate posterior (how many categories the data really uses, out of K)."""
    codes, details = [], {}
    for batch in data.batches(batch_size):
        codes.append(model.embed(batch.images).float())
        for name, values in model.kl_details(batch.images).items():
            details.setdefault(name, []).append(values.float())
    codes = torch.cat(codes)
    spec = model.spec
    stats: dict = {f"{name}": torch.cat(values).mean(0).tolist() for name, values in details.items()}
    if spec.continuous:
        activity = codes[:, spec.continuous_slice].var(0)
        stats["active_units"] = int((activity > ACTIVITY_THRESHOLD).sum())
        stats["unit_activity"] = activity.tolist()
    if spec.discrete:
        perplexities, offset = [], spec.continuous
        for n_vars, n_cats in spec.discrete:
            usage = codes[:, offset:offset + n_vars * n_cats].view(-1, n_vars, n_cats).mean(0)
            entropy = -(usage * usage.clamp_min(1e-12).log()).sum(-1)
            perplexities += entropy.exp().tolist()
            offset += n_vars * n_cats
        stats["code_perplexity"] = sum(perplexities) / len(perplexities)
        stats["code_perplexity_per_var"] = perplexities
    return stats
