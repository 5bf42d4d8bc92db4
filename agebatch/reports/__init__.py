"""What the published tables say for people: compliance inputs, shares, run summaries."""
