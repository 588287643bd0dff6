"""A tiny, randomly initialised Qwen2-VL-architecture model built locally (no download): for tests and CPU runs.

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on text every machine has (a fixed set of
Python standard-library sources), chart-like strings and, when given, the training trajectories; split like Qwen2's
(single digits) but with words apart from the space before them (:data:`WORD_SPLIT`); with the Qwen special
tokens registered as *special* and the protocol tags (``<tool_call>``, ``<answer>``, ...) as normal added tokens.
The tool block every prompt carries (the chat template's header and footer and one JSON line per tool, ~1,500 BPE
tokens) is added as whole tokens too, one per piece, so it costs ~20 tokens: a tiny model trained on CPU would
otherwise spend most of every step on it. The pieces come from the tool registry when the tokenizer is built; a
tool changed later is still tokenized correctly, by BPE, only longer.
The chat template is TRL's ``qwen3_vl.jinja`` byte for byte (TRL recognises templates by their exact text).
Everything is saved with ``save_pretrained`` so the model loads like any Hub checkpoint. See KNOWLEDGE.md.
"""

from __future__ import annotations

import json
import random
import sysconfig
from pathlib import Path

#: Qwen special tokens (special: never split, skipped when decoding), in Qwen's order.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]
#: Protocol tags: normal added tokens (single ids, but kept when decoding with ``skip_special_tokens``).
TAG_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<answer>", "</answer>"]

#: The pre-tokenizer split: Qwen2's (words, single digits, punctuation runs, newlines, spaces) except that a word
#: never takes the space or the quote before it, so a label is the same tokens in a question (`` of Ethiopia?``),
#: in a tool's quote (``"Ethiopia"``) and in an answer (``<answer>Ethiopia``): copying it is copying tokens.
WORD_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")

#: Standard-library sources the tokenizer learns from (present on every CPython 3.11 install).
_STDLIB_FILES = ["pydoc_data/topics.py", "argparse.py", "json/__init__.py", "json/decoder.py", "json/encoder.py",
                 "csv.py", "textwrap.py", "string.py", "statistics.py", "fractions.py", "calendar.py", "dataclasses.py", "pathlib.py",
                 "shutil.py", "tempfile.py", "inspect.py", "typing.py", "enum.py", "random.py", "datetime.py"]


def trl_chat_template(name: str = "qwen3_vl") -> str:
    """The text of TRL's ``trl/chat_templates/<name>.jinja`` (byte for byte)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


def _corpus(seed: int, template: str, texts: list[str] | tuple[str, ...] = ()) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    corpus = [(stdlib / name).read_text(encoding="utf-8", errors="replace") for name in _STDLIB_FILES
              if (stdlib / name).is_file()]
    corpus.extend(texts)
    rng = random.Random(seed)
    words = ["Sales", "Revenue", "Costs", "Profit", "Year", "Share", "Percent", "Total", "Million", "USD", "bar",
             "line", "chart", "value", "label", "axis", "title", "legend", "highest", "lowest", "difference",
             "What", "Which", "How", "many", "is", "the", "of", "in", "between", "image", "answer", "tool"]
    for _ in range(3000):
        a, b = rng.sample(words, 2)
        corpus.append(f"{a} {b} {rng.randint(0, 2030)}: {rng.uniform(0, 100):.1f}%, ({rng.randint(0, 999)}, "
                     f"{rng.randint(0, 999)}) <answer>{rng.randint(0, 500)}</answer>")
    corpus.append(template)
    corpus.append('<tool_call>\n{"name": "OCR", "arguments": {"image": "img_0"}}\n</tool_call>')
    # The tool block every prompt carries (~5 kB of JSON schema): merges learnt on it shorten every sequence by ~30 %.
    corpus.extend([_tool_block_text()] * 20)
    return corpus


def _tool_block_text() -> str:
    """The tool schemas as the prompts carry them (JSON), from the tool registry."""
    from thinkimg.agent.tool_record import current_schemas

    return "\n".join(json.dumps(schema) for schema in current_schemas())


def tool_block_pieces(tokenizer) -> list[str]:
    """The fixed pieces of the tool block ``tokenizer``'s chat template renders: its header, each tool's JSON line
    and its footer."""
    from thinkimg.agent.tool_record import current_schemas

    schemas = current_schemas()
    probe = [{"role": "user", "content": [{"type": "text", "text": "?"}]}]
    text = tokenizer.apply_chat_template(probe, tools=schemas, tokenize=False)
    start, end = text.index("# Tools"), text.index("</tool_call><|im_end|>") + len("</tool_call>")
    head, rest = text[start:end].split("\n<tools>\n", 1)
    body, tail = rest.split("\n</tools>", 1)
    lines = body.split("\n")
    if len(lines) != len(schemas) or any(json.loads(line) != schema for line, schema in zip(lines, schemas)):
        raise ValueError("the chat template does not render one JSON line per tool")
    return [head + "\n<tools>", *lines, "\n</tools>" + tail]


def build_tokenizer(seed: int = 0, vocab_size: int = 2048, texts: list[str] | tuple[str, ...] = ()):
    """A byte-level BPE tokenizer (``Qwen2Tokenizer``) with the Qwen special tokens and protocol tags; ``texts``
    (e.g. the training trajectories) join its corpus, so that their words become whole tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    template = trl_chat_template()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(WORD_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    bpe.train_from_iterator(_corpus(seed, template, texts), trainer=trainer)
    vocab = bpe.get_vocab()
    merges = json.loads(bpe.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>", add_prefix_space=False)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    tokenizer.add_tokens(TAG_TOKENS, special_tokens=False)
    tokenizer.chat_template = template
    tokenizer.add_tokens([AddedToken(piece, normalized=False) for piece in tool_block_pieces(tokenizer)],
                         special_tokens=False)
    tokenizer.model_max_length = 32768
    return tokenizer


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vision_depth: int = 2,
    vision_embed_dim: int = 64,
    vocab_size: int = 2048,
    max_position_embeddings: int = 8192,
    rope_theta: float = 10000.0,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 64 * 28 * 28,
    corpus: list[str] | tuple[str, ...] = (),
) -> Path:
    """Build and save (model, tokenizer, image processor, processor, chat template) into ``out_dir``; return it.

    ``vocab_size`` is the BPE's size before the special and tag tokens; the model's vocabulary is
    ``len(tokenizer)``. ``max_pixels`` bounds image tokens: ``max_pixels / 28**2`` per image (64 by default).
    ``corpus``: more text for the tokenizer to learn from (the training trajectories)."""
    import torch
    from transformers import AutoModelForImageTextToText, Qwen2VLConfig, Qwen2VLImageProcessorPil

    from thinkimg.agent.policies.hf_processor import ImageOnlyQwen2VLProcessor
    from thinkimg.agent.tool_record import save_tool_record

    head_dim = hidden_size // num_heads
    if head_dim * num_heads != hidden_size or head_dim % 2:
        raise ValueError("hidden_size must be num_heads * an even head_dim")
    half = head_dim // 2  # mrope_section must sum to head_dim / 2 (temporal, height, width)
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed, vocab_size, corpus)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden_size, "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads, "num_key_value_heads": num_kv_heads,
            "intermediate_size": intermediate_size or 2 * hidden_size, "max_position_embeddings": max_position_embeddings,
            "max_window_layers": num_layers, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta, "mrope_section": mrope},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={"depth": vision_depth, "embed_dim": vision_embed_dim, "hidden_size": hidden_size,
                       "num_heads": max(1, vision_embed_dim // 32), "mlp_ratio": 2, "patch_size": 14,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out)

    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, patch_size=14, temporal_patch_size=2,
        merge_size=2)
    processor = ImageOnlyQwen2VLProcessor(image_processor, tokenizer, chat_template=tokenizer.chat_template)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_tool_record(out)  # its tokenizer holds these schemas' lines as tokens
    return out
