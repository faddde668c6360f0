"""The model registry on S3: versions, aliases, leases, signatures."""
