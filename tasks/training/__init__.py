"""Training: the recipe, the model pipeline, evaluation on a holdout, the candidate's registry entry."""
