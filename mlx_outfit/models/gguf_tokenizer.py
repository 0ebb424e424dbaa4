"""A Hugging Face tokenizer folder (``tokenizer.json`` + ``tokenizer_config.json``) from GGUF metadata.

transformers already knows how to rebuild a tokenizer from llama.cpp's metadata keys; its file
reader needs torch, so the metadata comes from the ``gguf`` package instead and only the
conversion is borrowed. The result loads with ``mlx_lm.load`` / ``AutoTokenizer`` unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError


def _smollm_pre_tokenizer():
    """SmolLM's tokenizer.json (= llama.cpp's "smollm"): digits one per token, then GPT-2 splitting."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])


# llama.cpp pre-tokenizer names that transformers' conversion does not map (yet).
EXTRA_PRE_TOKENIZERS = {"smollm": _smollm_pre_tokenizer}

_METADATA_KEYS = {  # GGUF key -> name transformers' converter expects
    "tokenizer.ggml.model": "tokenizer_type",
    "tokenizer.ggml.pre": "pre_tokenizer_type",
    "tokenizer.ggml.tokens": "tokens",
    "tokenizer.ggml.scores": "scores",
    "tokenizer.ggml.token_type": "token_type",
    "tokenizer.ggml.merges": "merges",
    "tokenizer.ggml.add_space_prefix": "add_prefix_space",
}
_SPECIAL_TOKEN_IDS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
}


def write_tokenizer(metadata: dict[str, Any], out_dir: Path, source: str = "GGUF file") -> None:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` (special tokens, chat template) to ``out_dir``."""
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    if "tokenizer.ggml.tokens" not in metadata:
        raise UserError("has no tokenizer in its metadata", source)
    tokenizer_dict = {name: metadata[key] for key, name in _METADATA_KEYS.items() if key in metadata}
    try:
        backend, _ = convert_gguf_tokenizer(metadata["general.architecture"], tokenizer_dict)
    except ValueError as e:
        raise UserError(f"unsupported tokenizer: {e}", source) from None
    extra = EXTRA_PRE_TOKENIZERS.get(tokenizer_dict.get("pre_tokenizer_type"))
    if extra is not None:
        backend.pre_tokenizer = extra()

    tokens = tokenizer_dict["tokens"]
    specials = {name: tokens[metadata[key]] for name, key in _SPECIAL_TOKEN_IDS.items() if key in metadata}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        chat_template=metadata.get("tokenizer.chat_template"),
        add_bos_token=bool(metadata.get("tokenizer.ggml.add_bos_token", False)),
        add_eos_token=bool(metadata.get("tokenizer.ggml.add_eos_token", False)),
        model_max_length=int(metadata.get(f"{metadata['general.architecture']}.context_length", 2048)),
        **specials,
    )
    # One self-contained tokenizer_config.json (older transformers ignore chat_template.jinja), naming a
    # class every transformers version knows.
    tokenizer.save_pretrained(str(out_dir), save_jinja_files=False)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
