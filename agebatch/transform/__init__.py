"""The night's tables, after predict and before publish: declared SQL models, one runner."""
