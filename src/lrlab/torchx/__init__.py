"""lrlab.torchx."""
