"""How a model uses its latent code: active units, KL per dimension and variable, the categories it
uses (:func:`latent_statistics`); and what a categorical code says about the data: the digit it
clusters by, and the information it carries.

``kl_disc`` alone cannot tell: a code that puts every image on the same category pays ln K nats of KL
against the uniform prior while saying nothing. The mutual information between image and code,
I(x; c) = H(E_x q(c|x)) - E_x H(q(c|x)), is 0 there and ln K for a code that splits the data evenly
and surely.
"""

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


def categorical_probabilities(codes: torch.Tensor, spec) -> list[torch.Tensor]:
    """Each categorical variable's probabilities [N, K], from codes laid out as ``spec`` says
    (Gaussian parts first, then each categorical part's N x K probabilities)."""
    variables, offset = [], spec.continuous
    for n_vars, n_cats in spec.discrete:
        part = codes[:, offset:offset + n_vars * n_cats].reshape(len(codes), n_vars, n_cats)
        variables += list(part.unbind(1))
        offset += n_vars * n_cats
    return variables


def mutual_information(probabilities: torch.Tensor) -> float:
    """I(x; c) in nats for one variable, with x uniform over the rows of ``probabilities`` [N, K]."""
    p = probabilities.double()

    def entropy(q: torch.Tensor) -> torch.Tensor:
        return -(q * q.clamp_min(1e-300).log()).sum(-1)

    return float(entropy(p.mean(0)) - entropy(p).mean())


def cluster_accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
                     test_labels: torch.Tensor) -> float:
    """Unsupervised classification accuracy of one variable: each image's most probable category,
    each category read as the digit most of the training images in it have, scored on the test
    images (a category no training image chose reads as the most common digit)."""
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    categories = train.shape[1]
    counts = torch.zeros(categories, classes, dtype=torch.long)
    counts.index_put_((train.argmax(1).cpu(), train_labels.cpu()), torch.ones(len(train), dtype=torch.long),
                      accumulate=True)
    digit_of = counts.argmax(1)
    unused = counts.sum(1) == 0
    digit_of[unused] = torch.bincount(train_labels.cpu(), minlength=classes).argmax()
    return float((digit_of[test.argmax(1).cpu()] == test_labels.cpu()).double().mean())


def categorical_code_metrics(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor,
                             test_labels: torch.Tensor, spec) -> dict:
    """``cluster_acc`` (the best variable's), ``code_mi`` (nats, mean over variables, on test) and
    ``code_mi_per_var``."""
    train_vars = categorical_probabilities(train_codes, spec)
    test_vars = categorical_probabilities(test_codes, spec)
    information = [mutual_information(v) for v in test_vars]
    return {"cluster_acc": max(cluster_accuracy(a, train_labels, b, test_labels) for a, b in zip(train_vars, test_vars)),
            "code_mi": sum(information) / len(information), "code_mi_per_var": information}
