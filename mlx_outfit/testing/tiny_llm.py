"""A tiny random llama model folder that ``mlx_lm.load`` accepts, with a real byte-level BPE tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

# SmolLM2's chat template (ChatML), so prompts look like the default model's.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = [
    "black leather ankle boots with a block heel", "white cotton shirt, relaxed fit",
    "blue denim jeans, straight leg", "red floral midi dress", "grey wool coat, long",
    "beige linen trousers", "gold hoop earrings", "brown leather shoulder bag",
    "outfit: upper, bottom, shoe, bag, accessory. Which item completes the outfit? Answer: A B C D",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;!?-'()",
]


def build_tokenizer(path: Path, vocab_size: int = 512) -> int:
    """Train a byte-level BPE tokenizer on a small fashion corpus; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(_CORPUS * 20, trainer)
    tokenizer.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "chat_template": CHATML_TEMPLATE,
        "model_max_length": 2048,
    }, indent=2))
    return tokenizer.get_vocab_size()


def make_tiny_llama(path: str | Path, *, hidden_size: int = 64, layers: int = 2, quantize: bool = False,
                    seed: int = 0) -> Path:
    """Write a tiny random llama model folder (optionally 4-bit quantized, group 32) and return its path."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(path)
    config = {
        "model_type": "llama", "hidden_size": hidden_size, "num_hidden_layers": layers,
        "intermediate_size": hidden_size * 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": vocab, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
        "max_position_embeddings": 2048, "eos_token_id": 2, "bos_token_id": None,
    }
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    if quantize:
        import mlx.nn as nn

        nn.quantize(model, group_size=32, bits=4)
        config["quantization"] = {"group_size": 32, "bits": 4}
    mx.eval(model.parameters())
    mx.save_safetensors(str(path / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
