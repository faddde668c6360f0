"""What runs inside the KServe model server: the routed model, its inputs, logs and counters."""
