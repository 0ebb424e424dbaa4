"""Model resolution, GGUF import, loading and CPU setup."""
