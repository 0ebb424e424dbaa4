"""Model resolution, GGUF import, loading and CPU setup."""

import os

# transformers (used by mlx-lm for tokenizers) advises on every start that torch is missing;
# this toolkit never needs torch.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
