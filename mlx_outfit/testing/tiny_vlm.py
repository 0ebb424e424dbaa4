"""Tiny random vision-language model folders that ``mlx_vlm.load`` accepts (~0.5 MB, built in seconds).

Two families that mlx-vlm batches one image per prompt (:data:`FAMILIES`):

* ``idefics3``: SmolVLM-Instruct's architecture: llama text model, SigLIP vision tower on
  32 px images (8 px patches → 16 patches → pixel-shuffled into 4 image tokens), SmolVLM's
  chat template, ``SmolVLMImageProcessorPil``. ``smolvlm`` builds the same model as SmolVLM2
  ships it, whose mlx-vlm processor cannot batch several prompts' images.
* ``qwen2_vl``: the default captioner's architecture: qwen2 text model with M-RoPE, a
  1-block vision tower on ≤56×56 px images (14 px patches merged 2×2 into 4 tokens).

Both use a real byte-level BPE tokenizer trained on a small fashion corpus. The weights
are random, so the words are noise: they exercise the real load / chat-template /
generate path in tests and benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

from .tiny_llm import _CORPUS

FAMILIES = ("idefics3", "qwen2_vl")  # the ones that batch; "smolvlm" (SmolVLM2's) is built too

SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = {
    "idefics3": ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>",
                 "<fake_token_around_image>", "<global-img>"],
    "qwen2_vl": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"],
}


def _build_tokenizer(path: Path, family: str, template: str, eos: str, extra: dict,
                     vocab_size: int = 384) -> dict[str, int]:
    """Train a byte-level BPE tokenizer; returns the special tokens' ids and the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS[family],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(_CORPUS * 20, trainer)
    tokenizer.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": eos,
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 2048,
        "extra_special_tokens": extra,
    }, indent=2))
    (path / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    return {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS[family]} | {"vocab_size": tokenizer.get_vocab_size()}


def _idefics3_files(path: Path, hidden_size: int, layers: int, model_type: str = "idefics3") -> dict:
    """Tokenizer and processor files; returns config.json (``model_type`` smolvlm: SmolVLM2's processor)."""
    processor_class, architecture = {"idefics3": ("Idefics3Processor", "Idefics3ForConditionalGeneration"),
                                     "smolvlm": ("SmolVLMProcessor", "SmolVLMForConditionalGeneration")}[model_type]
    image_size, patch_size, scale_factor = 32, 8, 2
    ids = _build_tokenizer(path, "idefics3", SMOLVLM_TEMPLATE, "<end_of_utterance>", {
        "image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
        "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"})
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SmolVLMImageProcessorPil", "processor_class": processor_class,
        "do_convert_rgb": True, "do_resize": True, "size": {"longest_edge": image_size}, "resample": 1,
        "do_image_splitting": False, "max_image_size": {"longest_edge": image_size}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
        "do_pad": True}, indent=2))
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor ** 2
    (path / "processor_config.json").write_text(json.dumps(
        {"processor_class": processor_class, "image_seq_len": image_seq_len}, indent=2))
    return {
        "model_type": model_type, "architectures": [architecture],
        "text_config": {
            "model_type": "llama", "hidden_size": hidden_size, "intermediate_size": hidden_size * 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": layers,
            "rms_norm_eps": 1e-5, "vocab_size": ids["vocab_size"], "rope_theta": 10000.0,
            "max_position_embeddings": 2048, "tie_word_embeddings": False},
        "vision_config": {
            "model_type": f"{model_type}_vision", "hidden_size": hidden_size, "intermediate_size": hidden_size * 2,
            "num_attention_heads": 4, "num_hidden_layers": 1, "patch_size": patch_size,
            "image_size": image_size, "num_channels": 3, "layer_norm_eps": 1e-6},
        "scale_factor": scale_factor, "vocab_size": ids["vocab_size"], "image_token_id": ids["<image>"],
        "eos_token_id": ids["<end_of_utterance>"], "pad_token_id": ids["<|endoftext|>"],
    }


def _qwen2_vl_files(path: Path, hidden_size: int, layers: int) -> dict:
    """Tokenizer and processor files; returns config.json."""
    ids = _build_tokenizer(path, "qwen2_vl", QWEN2_VL_TEMPLATE, "<|im_end|>", {
        "image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    (path / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
        "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 28 * 28,
        "max_pixels": 56 * 56, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "do_convert_rgb": True}, indent=2))
    heads = 4
    head_dim = hidden_size // heads
    third = head_dim // 2 // 3
    return {
        "model_type": "qwen2_vl", "architectures": ["Qwen2VLForConditionalGeneration"],
        "hidden_size": hidden_size, "intermediate_size": hidden_size * 2, "num_attention_heads": heads,
        "num_key_value_heads": 2, "num_hidden_layers": layers, "rms_norm_eps": 1e-6,
        "vocab_size": ids["vocab_size"], "rope_theta": 1000000.0, "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
        "rope_scaling": {"type": "mrope", "mrope_section": [head_dim // 2 - 2 * third, third, third]},
        "vision_config": {
            "model_type": "qwen2_vl", "depth": 1, "embed_dim": 32, "hidden_size": hidden_size, "num_heads": 2,
            "mlp_ratio": 2, "patch_size": 14, "spatial_patch_size": 14, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "in_channels": 3},
        "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def make_tiny_vlm(path: str | Path, *, family: str = "idefics3", hidden_size: int = 64, layers: int = 2,
                  seed: int = 0) -> Path:
    """Write a tiny random VLM folder (fp32) of ``family`` (see :data:`FAMILIES`) and return its path."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_vlm.utils import get_model_and_args, update_module_configs

    if family not in (*FAMILIES, "smolvlm"):
        raise ValueError(f"unknown family {family!r} (choose from {FAMILIES} or smolvlm)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if family == "qwen2_vl":
        config = _qwen2_vl_files(path, hidden_size, layers)
    else:
        config = _idefics3_files(path, hidden_size, layers, model_type=family)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    # build the module the way mlx_vlm.load does, so the saved names are the ones it expects
    model_class, _ = get_model_and_args(config=dict(config))
    loaded = json.loads((path / "config.json").read_text())
    loaded.setdefault("text_config", {})
    model_config = update_module_configs(model_class.ModelConfig.from_dict(loaded), model_class, loaded,
                                         ["text", "vision"])
    mx.random.seed(seed)
    model = model_class.Model(model_config)
    mx.eval(model.parameters())
    mx.save_safetensors(str(path / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "mlx"})
    return path
