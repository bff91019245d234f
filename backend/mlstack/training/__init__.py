"""Training: demo data sets, the preprocessing recipe, model search and publishing."""
