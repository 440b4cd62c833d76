"""lrlab.tune."""
