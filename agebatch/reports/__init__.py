"""What the published tables say for people, rendered only: pages, offers, run summaries."""
