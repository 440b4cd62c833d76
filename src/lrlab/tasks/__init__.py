"""lrlab.tasks."""
