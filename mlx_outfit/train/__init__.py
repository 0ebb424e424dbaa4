"""Fine-tuning: SFT examples and trainer (LoRA / QLoRA on mlx-lm's tuner), DPO, the self-improving loop."""
