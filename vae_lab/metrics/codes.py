"""What a categorical code says about the data: the digit it clusters by, and the information it carries.

``kl_disc`` alone cannot tell: a code that puts every image on the same category pays ln K nats of KL
against the uniform prior while saying nothing. The mutual information between image and code,
I(x; c) = H(E_x q(c|x)) - E_x H(q(c|x)), is 0 there and ln K for a code that splits the data evenly
and surely.
"""

import torch


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
