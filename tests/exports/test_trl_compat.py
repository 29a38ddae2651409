"""The exported datasets go through TRL's own data preparation and one training step.

Everything is local: a tiny Llama with random weights and a word-level tokenizer built from
the exported text, saved to a temporary directory; the Hub is never contacted.
"""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets
import pytest
import transformers
import trl
from django.core.management import call_command
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# The module's data is built once (module fixture); this marker makes pytest-django create the
# test database for it.
pytestmark = pytest.mark.django_db

SPECIAL = ["<pad>", "[UNK]", "<s>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


def _texts(path):
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for key in ("messages", "prompt", "completion", "chosen", "rejected"):
            for message in row.get(key) or []:
                yield message["content"]


@pytest.fixture(scope="module")
def exports(django_db_setup, django_db_blocker, tmp_path_factory):
    """Export every kind once for the module's tests (the data is only read)."""
    from tests.conftest import REFERENCE_STUDY
    from tests.exports.builders import conversation_make

    out = tmp_path_factory.mktemp("datasets")
    with django_db_blocker.unblock():
        from django.db import transaction

        from studyapp.studies.services import study_load

        with transaction.atomic():
            version = study_load(text=REFERENCE_STUDY.read_text(), slug="trl-demo",
                                 offline=True).version
            for condition, ratings in (("base", {3: 8, 6: 3, 9: 9}),
                                       ("collabllm", {3: 4, 6: 9, 9: 10})):
                conversation_make(version=version, condition=condition, ratings=ratings,
                                  regenerate_turns=(2,), side_by_side_turns=(5,))
            for kind in ("sft", "dpo", "kto", "reward"):
                call_command("export_dataset", "trl-demo", "--kind", kind,
                             "--out", str(out / kind))
            transaction.set_rollback(True)
    return out


@pytest.fixture(scope="module")
def tiny_model(exports, tmp_path_factory):
    """(model dir, tokenizer): a 2-layer Llama with random weights and a local tokenizer."""
    import torch

    torch.manual_seed(0)
    texts = [t for kind in ("sft", "dpo", "kto", "reward")
             for t in _texts(exports / kind / "train.jsonl")]
    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="<|end|>", pad_token="<pad>",
        unk_token="[UNK]", chat_template=CHAT_TEMPLATE,
    )
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path), tokenizer


def _load(exports, kind):
    dataset = datasets.load_dataset(
        "json", data_files=str(exports / kind / "train.jsonl"), split="train"
    )
    assert len(dataset) > 0
    return dataset


def _common(tmp_path):
    return {
        "output_dir": str(tmp_path), "max_steps": 1, "per_device_train_batch_size": 2,
        "report_to": "none", "use_cpu": True, "save_strategy": "no", "logging_steps": 1,
        "dataset_num_proc": None,
    }


def _train(trainer):
    result = trainer.train()
    assert result.global_step == 1
    return trainer


def test_sft_export_trains_with_sft_trainer(exports, tiny_model, tmp_path):
    path, tokenizer = tiny_model
    dataset = _load(exports, "sft")
    trainer = trl.SFTTrainer(
        model=path, args=trl.SFTConfig(**_common(tmp_path), max_length=512),
        train_dataset=dataset, processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    assert "input_ids" in prepared.column_names
    assert len(prepared) == len(dataset)
    _train(trainer)


def test_dpo_export_trains_with_dpo_trainer(exports, tiny_model, tmp_path):
    path, tokenizer = tiny_model
    dataset = _load(exports, "dpo")
    assert set(dataset["source"]) == {"regeneration", "side_by_side"}
    trainer = trl.DPOTrainer(
        model=path, args=trl.DPOConfig(**_common(tmp_path), max_length=512),
        train_dataset=dataset, processing_class=tokenizer,
    )
    columns = trainer.train_dataset.column_names
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(columns)
    _train(trainer)


def test_kto_export_trains_with_kto_trainer(exports, tiny_model, tmp_path):
    path, tokenizer = tiny_model
    dataset = _load(exports, "kto")
    assert set(dataset["label"]) == {True, False}
    trainer = trl.KTOTrainer(
        model=path, args=trl.KTOConfig(**_common(tmp_path), max_length=512),
        train_dataset=dataset, processing_class=tokenizer,
    )
    assert len(trainer.train_dataset) == len(dataset)
    _train(trainer)


def test_reward_export_prepares_for_sft_and_its_pairs_train_a_reward_model(
    exports, tiny_model, tmp_path
):
    """TRL's RewardTrainer learns from pairs only: it gets the dpo export (real pairs). The
    per-turn reward rows are prompt-completion data (for reward-weighted or filtered SFT)."""
    path, tokenizer = tiny_model
    rewards = _load(exports, "reward")
    assert all(isinstance(r, float) for r in rewards["reward"])
    sft = trl.SFTTrainer(
        model=path, args=trl.SFTConfig(**_common(tmp_path / "sft"), max_length=512),
        train_dataset=rewards, processing_class=tokenizer,
    )
    # Prompt-completion data: the loss covers the reply only, the prompt is masked out.
    first = sft.train_dataset[0]
    assert -100 in first["labels"]
    assert any(label != -100 for label in first["labels"])
    pairs = _load(exports, "dpo")
    reward_model = trl.RewardTrainer(
        model=path, args=trl.RewardConfig(**_common(tmp_path / "rm"), max_length=512),
        train_dataset=pairs, processing_class=tokenizer,
    )
    assert {"chosen_ids", "rejected_ids"} <= set(reward_model.train_dataset.column_names)
    _train(reward_model)
