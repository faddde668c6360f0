"""Data sets: the contract, loading, validation, synthetic data."""
