"""Developer tools, not shipped in the package: the model converter, the face-finding bench."""
