"""lrlab.optim."""
