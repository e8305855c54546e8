"""Metrics: functions of (model, data) that return numbers, each testable on its own."""

from vae_lab.metrics.codes import latent_statistics
from vae_lab.metrics.disentanglement import disentanglement_metrics
from vae_lab.metrics.images import population_reconstruction_quality, reconstruction_quality
from vae_lab.metrics.likelihood import importance_sampled_nll
from vae_lab.metrics.probes import probe_accuracies
from vae_lab.metrics.reference import reference_classifier
from vae_lab.metrics.samples import sample_quality
from vae_lab.metrics.traversal import traversal_control

__all__ = ["disentanglement_metrics", "importance_sampled_nll", "latent_statistics", "population_reconstruction_quality", "probe_accuracies",
           "reconstruction_quality",
           "reference_classifier", "sample_quality", "traversal_control"]
