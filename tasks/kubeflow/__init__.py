"""Kubeflow Pipelines: the retrain pipeline, its components and its submission."""
