"""The classifier canary simulation behind bench/canary_classifier.py.

- `world`: true class probabilities, labels, stable's and the canary's predicted probabilities,
  and the scenario parameters solved on a large sample (temperature, logit offset).
- `run`: one batch of canaries of one cell, the real verdict called at every one-second look.
- `report`: shares, Wilson intervals, the verdict's promise per cell, the table.
"""
