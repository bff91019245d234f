"""The training data's profile: its typed shape, the one binning function, how it is computed and reported."""
