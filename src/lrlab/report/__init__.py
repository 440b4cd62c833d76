"""lrlab.report."""
