"""Training and measuring age models on labelled faces."""
