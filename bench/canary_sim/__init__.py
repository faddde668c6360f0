"""The canary simulation behind bench/canary_stats.py: traffic, the three rules, one batch's run.

- `model`: the simulated world (prices, predictions, errors, latencies, labels), vectorized.
- `screen`: a numpy transcription of the new verdict's rules, used only to skip looks where the
  real verdict would wait; the real function decides every canary.
- `rules`: the new verdict and the old one; `flagger`: the Flagger-style rule (same traffic).
- `run`: one batch of canaries of one scenario, one look per simulated second.
"""
