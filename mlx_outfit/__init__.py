"""mlx-outfit: on-device outfit recommendation with MLX (caption → LoRA SFT → DPO → fuse → recommend)."""

__version__ = "0.1.0"
