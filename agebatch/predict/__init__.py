"""From a photo to an age: decode, find the face, the model and its card, the predict stage."""
