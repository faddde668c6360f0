"""The drift check: exact statistics, Evidently's report, the Prefect tasks around them."""
