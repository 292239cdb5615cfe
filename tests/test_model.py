"""The model: the record's architecture and parameter count, each technique a switch."""

import math

import pytest
import torch

from trainer.config import ModelConfig, load_config
from trainer.model import GPT

RECORD_PARAMS = 275_743_576  # modded-nanogpt 2025-08-23 on 8 GPUs (64 scalars after padding)


def tiny_model(**switches) -> GPT:
    cfg = load_config("tiny").model.model_copy(update=switches)
    torch.manual_seed(0)
    return GPT(ModelConfig.model_validate(cfg.model_dump()), max_seq_len=512)


def tokens(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, 50000, (n + 1,), generator=g)
    seq[[0, 100, 180]] = 50256
    return seq[:-1], seq[1:]


@pytest.fixture(scope="module")
def record_model() -> GPT:
    return GPT(ModelConfig(), max_seq_len=128)


def test_parameter_count_equals_the_record(record_model):
    model = record_model
    assert sum(p.numel() for p in model.parameters()) == RECORD_PARAMS


def test_layer_7_has_no_attention(record_model):
    model = record_model
    assert [b.attn is None for b in model.blocks] == [i == 7 for i in range(12)]


def test_output_projections_and_head_start_at_zero(record_model):
    model = record_model
    assert not model.lm_head.any()
    for block in model.blocks:
        assert not block.mlp.c_proj.any()
        if block.attn is not None:
            assert not block.attn.qkvo_w[3].any() and block.attn.qkvo_w[:3].any()


def test_hidden_init_is_uniform_with_std_half_over_sqrt_width(record_model):
    w = record_model.blocks[0].mlp.c_fc
    assert w.abs().max() <= 3**0.5 * 0.5 / 768**0.5
    assert w.std().item() == pytest.approx(0.5 / 768**0.5, rel=0.01)


def test_initial_loss_is_uniform_over_the_padded_vocab():
    inputs, targets = tokens()
    loss = tiny_model()(inputs, targets, torch.tensor(4))
    assert loss.item() / targets.numel() == pytest.approx(math.log(50304), abs=1e-4)


def test_optimizer_groups_cover_every_parameter_once(record_model):
    model = record_model
    groups = model.param_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert all(p.ndim >= 2 for p in groups["hidden"])


@pytest.mark.parametrize(
    "switch, present",
    [
        (dict(value_embeds=False), lambda m: len(m.value_embeds) == 0),
        (dict(attn_gate=False), lambda m: all(b.attn is None or b.attn.gate_w is None for b in m.blocks)),
        (dict(rotary="none"), lambda m: all(b.attn is None or b.attn.rotary is None for b in m.blocks)),
        (dict(skip_attention_layers=[]), lambda m: all(b.attn is not None for b in m.blocks)),
        (dict(zero_init_outputs=False), lambda m: m.lm_head.any()),
    ],
)
def test_switching_a_technique_off_changes_the_model(switch, present):
    assert present(tiny_model(**switch))


@pytest.mark.parametrize(
    "switch",
    [
        dict(value_embeds=False), dict(unet_skips=False), dict(x0_mix=False), dict(embed_norm=False),
        dict(qk_norm=False), dict(rotary="full"), dict(attn_gate=False), dict(relu_squared=False),
        dict(logit_softcap=0.0), dict(doc_masking=False), dict(long_short_windows=False), dict(attn_scale=None),
    ],
)
def test_every_switch_changes_what_the_model_computes(switch):
    inputs, targets = tokens()
    base, changed = tiny_model(zero_init_outputs=False), tiny_model(zero_init_outputs=False, **switch)
    for m in (base, changed):  # move the learnable mixes off their neutral initial values
        m.scalars.data.copy_(torch.linspace(0.3, 1.2, m.scalars.numel()))
    window = torch.tensor(2)  # long 2 blocks, short 1: smaller than the sequence, so window switches matter
    assert base(inputs, targets, window).item() != changed(inputs, targets, window).item()
