"""The bundled age model, its model card and licence notice."""
