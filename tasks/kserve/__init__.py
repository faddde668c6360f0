"""InferenceServices on Kubernetes: manifests, their status, the serving target that patches them."""
