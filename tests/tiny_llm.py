"""A tiny random-weight Llama with a word-level tokenizer and a chat template, built on disk.

For the transformers backend's tests: no download, a few hundred KB, CPU in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "the garden is green and the sun is warm",
    "write a short story about a quiet lighthouse keeper",
    "my friends like to cook at home on sunday",
    "a blog post about small habits that help every day",
]
SPECIALS = ["[UNK]", "[PAD]", "<s>", "</s>", "<user>", "<assistant>", "<system>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


def build_tiny_llama(path: Path) -> Path:
    """A 2-layer, 32-wide Llama with a word-level tokenizer and a chat template, saved to disk."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted({w for s in SENTENCES for w in s.split()})
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
        eos_token="</s>",
    )  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], pad_token_id=vocab["[PAD]"],
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # never end early: the tests want a predictable number of tokens
        model.lm_head.weight[vocab["</s>"]] = 0
        model.lm_head.bias = None
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_adapter(model: Path, path: Path) -> Path:
    """A rank-4 LoRA adapter on the attention and MLP projections of ``model``, saved with
    peft; its weights are random, so it visibly changes the model's replies."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(model)
    config = LoraConfig(
        r=4,
        lora_alpha=64,  # large: the adapter must change greedy replies of a random model
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                        "down_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )  # fmt: skip
    get_peft_model(base, config).save_pretrained(path)
    return path
