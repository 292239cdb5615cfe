"""Config: defaults are the record, presets overlay them, bad input names the key."""

import pytest

from trainer.config import TrainConfig, load_config, preset_names
from trainer.errors import InputError


def test_defaults_are_the_2025_08_23_record():
    cfg = TrainConfig()
    assert (cfg.model.num_layers, cfg.model.num_heads, cfg.model.head_dim, cfg.model.model_dim) == (12, 6, 128, 768)
    assert cfg.model.padded_vocab == 50304
    assert cfg.schedule.num_iterations == 1695
    assert cfg.schedule.batch[0].tokens == 393_216 and cfg.schedule.seq_len[0].tokens == 48 * 1024
    assert (cfg.schedule.lr.cooldown_frac, cfg.schedule.lr.final) == (0.45, 0.1)
    assert (cfg.optim.muon_lr, cfg.optim.adam_lr, cfg.optim.adam_betas) == (0.05, 0.008, (0.8, 0.95))
    assert (cfg.eval.every, cfg.data.val_tokens) == (125, 10_485_760)


def test_required_keys_exist_under_their_names():
    cfg = load_config(
        "tiny",
        [
            "data.train_files=a*.bin",
            "data.val_files=b*.bin",
            "data.val_tokens=2048",
            "schedule.num_iterations=7",
            "eval.every=3",
            "runtime.seed=5",
            "runtime.device=cpu",
        ],
    )
    assert (cfg.data.train_files, cfg.data.val_files, cfg.data.val_tokens) == ("a*.bin", "b*.bin", 2048)
    assert (cfg.schedule.num_iterations, cfg.eval.every, cfg.runtime.seed, cfg.runtime.device) == (7, 3, 5, "cpu")


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_round_trips_through_yaml(name, tmp_path):
    cfg = load_config(name)
    path = tmp_path / "cfg.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_set_values_parse_as_yaml_scalars_and_lists():
    cfg = load_config("tiny", ["model.skip_attention_layers=[1, 2]", "model.attn_scale=null", "model.qk_norm=false"])
    assert cfg.model.skip_attention_layers == [1, 2]
    assert cfg.model.attn_scale is None and cfg.model.qk_norm is False


def test_unknown_key_suggests_the_closest():
    with pytest.raises(InputError, match=r"unknown key 'optim.muon_lrr'; did you mean 'optim.muon_lr'"):
        load_config("tiny", ["optim.muon_lrr=0.1"])


def test_a_step_count_beyond_what_a_run_can_do_fails_before_any_work():
    with pytest.raises(InputError, match=r"schedule.num_iterations: Input should be less than or equal to 10000000"):
        load_config("tiny", ["schedule.num_iterations=99999999999999999999"])


def test_wrong_type_names_the_key_and_the_override():
    with pytest.raises(InputError, match=r"--set schedule.num_iterations=many: schedule.num_iterations"):
        load_config("tiny", ["schedule.num_iterations=many"])


def test_error_in_a_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  num_layers: 6\n  num_hedas: 2\n")
    with pytest.raises(InputError, match=rf"{path}:3: unknown key 'model.num_hedas'; did you mean 'model.num_heads'"):
        load_config(path)


def test_stage_fractions_must_increase():
    with pytest.raises(InputError, match="must strictly increase"):
        load_config("tiny", ["schedule.batch=[{until: 0.6, tokens: 1024}, {until: 0.5, tokens: 2048}]"])


def test_last_stage_must_reach_the_end():
    with pytest.raises(InputError, match="until: 1.0"):
        load_config("tiny", ["schedule.seq_len=[{until: 0.5, tokens: 512}]"])


def test_batch_must_split_over_ranks_and_sequences():
    cfg = load_config("tiny", ["schedule.batch=[{until: 1.0, tokens: 1536}]"])
    cfg.check_for_run(world_size=1)
    with pytest.raises(InputError, match=r"1536 tokens, not divisible by 2 rank\(s\) x schedule.seq_len 512"):
        cfg.check_for_run(world_size=2)


def test_sequence_length_must_be_whole_attention_blocks():
    cfg = load_config("tiny", ["schedule.seq_len=[{until: 1.0, tokens: 500}]"])
    with pytest.raises(InputError, match=r"schedule.seq_len\[0\].tokens=500 must be a multiple of 128"):
        cfg.check_for_run(world_size=1)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(InputError, match="presets: gpt2_124m, tiny"):
        load_config("gpt3")


def test_fixture_paths_resolve_into_the_package():
    cfg = load_config("tiny")
    assert cfg.data.train_files.endswith("trainer/fixtures/fixture_train_*.bin")
