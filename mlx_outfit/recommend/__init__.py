"""Outfit recommendation over a private wardrobe: the model ranks, a collage shows, feedback teaches."""
