"""Release acts: driving whatever serves the model from the flows (canary, promote, roll back)."""
