"""The trainer's typed configuration: defaults are the 2025-08-23 record, presets overlay them.

Every value a sweep may search lives here under a dotted key (`optim.muon_lr`,
`schedule.window.end`, ...). Loading merges a preset or YAML file and `--set KEY=VALUE`
overrides onto the defaults and validates the result before any work starts.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from trainer.errors import InputError
from trainer.text import quoted, read_text
from trainer.yaml_safe import YamlDataError, compose, construct, load

PRESETS_DIR = Path(__file__).parent / "presets"
FIXTURES_DIR = Path(__file__).parent / "fixtures"
FIXTURES_PREFIX = "@fixtures/"
ATTN_BLOCK = 128  # FlexAttention's block size; masks and windows are built in these units


def _not_a_bool(value: Any) -> Any:
    # pydantic reads true as 1 and false as 0 for a number; `--set model.num_layers=true` is a slip
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "Input should be a number, not true or false")
    return value


Int = Annotated[int, BeforeValidator(_not_a_bool)]
Float = Annotated[float, BeforeValidator(_not_a_bool)]


class _Section(BaseModel):
    # no inf or nan anywhere: `--set optim.muon_lr=1e400` is a typo, not an infinite learning rate
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelConfig(_Section):
    """Architecture. Each technique of the record is a switch so ablations can turn it off."""

    vocab_size: Int = Field(50257, gt=0)
    vocab_multiple: Int = Field(128, gt=0)  # 50257 -> 50304 for efficient matmuls
    num_layers: Int = Field(12, gt=0)
    num_heads: Int = Field(6, gt=0)
    head_dim: Int = Field(128, gt=0)
    model_dim: Int = Field(768, gt=0)
    mlp_ratio: Int = Field(4, gt=0)
    init_scale: Float = 0.5  # uniform init with std init_scale / sqrt(width)
    skip_attention_layers: list[Int] = [7]
    long_window_layers: list[Int] = [0, 4, 7, 11]
    long_short_windows: StrictBool = True  # off: every layer uses the long window
    doc_masking: StrictBool = True
    value_embeds: StrictBool = True  # 3 embeddings mixed into V of the first and last 3 layers
    unet_skips: StrictBool = True
    x0_mix: StrictBool = True  # x = a*x + b*x0 before every block
    embed_norm: StrictBool = True
    qk_norm: StrictBool = True
    rotary: Literal["half", "full", "none"] = "half"
    rope_base: Float = Field(1024.0, gt=1)
    attn_scale: Float | None = 0.12  # None: 1/sqrt(head_dim)
    attn_gate: StrictBool = True  # per-head sigmoid output gate (SparseAttnGate)
    attn_gate_features: Int = Field(12, gt=0)  # record: model_dim // 64
    relu_squared: StrictBool = True  # off: GELU
    zero_init_outputs: StrictBool = True  # output projections and lm_head start at zero
    logit_softcap: Float = Field(30.0, ge=0)  # 0 disables; logits = cap * sigmoid(z / temperature)
    softcap_temperature: Float = Field(7.5, gt=0)
    fp8_head: StrictBool = True  # FP8 lm_head matmul in training, CUDA only

    @model_validator(mode="after")
    def _check_shape(self) -> ModelConfig:
        if self.num_heads * self.head_dim != self.model_dim:
            raise ValueError(
                f"num_heads ({self.num_heads}) x head_dim ({self.head_dim}) must equal model_dim ({self.model_dim})"
            )
        if self.num_layers % 2:
            raise ValueError(f"num_layers must be even for the U-net skips, got {self.num_layers}")
        if self.value_embeds and self.num_layers < 6:
            raise ValueError("value_embeds needs num_layers >= 6 (first and last three layers)")
        if self.attn_gate and self.attn_gate_features > self.model_dim:
            raise ValueError(f"attn_gate_features ({self.attn_gate_features}) exceeds model_dim ({self.model_dim})")
        for key in ("skip_attention_layers", "long_window_layers"):
            bad = [i for i in getattr(self, key) if not 0 <= i < self.num_layers]
            if bad:
                raise ValueError(f"{key} has layer indices {bad} outside 0..{self.num_layers - 1}")
        return self

    @property
    def padded_vocab(self) -> int:
        """Vocabulary rounded up to `vocab_multiple`."""
        m = self.vocab_multiple
        return (self.vocab_size + m - 1) // m * m


class OptimConfig(_Section):
    """Muon for hidden matrices, Adam for embeddings, scalars and the head."""

    muon_lr: Float = Field(0.05, ge=0)
    muon_weight_decay: Float = Field(0.0, ge=0)
    muon_ns_steps: Int = Field(5, gt=0)
    adam_lr: Float = Field(0.008, ge=0)
    adam_betas: tuple[Float, Float] = (0.8, 0.95)
    adam_eps: Float = Field(1e-10, gt=0)
    adam_weight_decay: Float = Field(0.0, ge=0)
    embed_lr_mul: Float = Field(75.0, ge=0)
    scalar_lr_mul: Float = Field(5.0, ge=0)
    head_lr_mul: Float = Field(1.0, ge=0)


class LRSchedule(_Section):
    """Stable, then a linear cooldown to `final` times the base LR (optional linear warmup)."""

    warmup_frac: Float = Field(0.0, ge=0, lt=1)
    cooldown_frac: Float = Field(0.45, ge=0, le=1)
    final: Float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _check_fracs(self) -> LRSchedule:
        if self.warmup_frac + self.cooldown_frac > 1:
            raise ValueError(f"warmup_frac + cooldown_frac = {self.warmup_frac + self.cooldown_frac} exceeds 1")
        return self


class LinearWindow(_Section):
    """Window (tokens) = start + (end - start) * progress, rounded up to whole blocks.

    The record's 0 -> 1728 gives 128 tokens at the start and 1792 at the end.
    """

    kind: Literal["linear"] = "linear"
    start: Int = Field(0, ge=0)
    end: Int = Field(1728, ge=0)


class Stage(_Section):
    """One stage of a staged schedule: holds while progress < `until`."""

    until: Float = Field(gt=0, le=1)


class TokensStage(Stage):
    tokens: Int = Field(gt=0)


class StagedWindow(_Section):
    """Window (tokens) by stage of training, rounded up to whole blocks."""

    kind: Literal["stages"] = "stages"
    stages: list[TokensStage]

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: list[TokensStage]) -> list[TokensStage]:
        return _check_stages(v)


def _check_stages(stages: list[TokensStage]) -> list[TokensStage]:
    if not stages:
        raise ValueError("needs at least one stage")
    untils = [s.until for s in stages]
    if any(b <= a for a, b in zip(untils, untils[1:])):
        raise ValueError(f"'until' fractions must strictly increase, got {untils}")
    if untils[-1] != 1.0:
        raise ValueError(f"the last stage must have until: 1.0 (the end of training), got {untils[-1]}")
    return stages


class MomentumWarmup(_Section):
    """Muon momentum rises linearly from `start` to `end` over the first `steps` steps."""

    start: Float = Field(0.85, ge=0, lt=1)
    end: Float = Field(0.95, ge=0, lt=1)
    steps: Int = Field(300, ge=0)


# A bound on what a run can do, far above any speedrun schedule (records run 1,400-6,000 steps):
# a typo of many digits fails before any work instead of training for ever
MAX_ITERATIONS = 10_000_000


def _one_stage(tokens: int) -> list[TokensStage]:
    return [TokensStage(until=1.0, tokens=tokens)]


class ScheduleConfig(_Section):
    """Everything that changes over training, as a function of progress = step / num_iterations."""

    num_iterations: Int = Field(1695, gt=0, le=MAX_ITERATIONS)
    lr: LRSchedule = LRSchedule()
    window: Annotated[LinearWindow | StagedWindow, Field(discriminator="kind")] = LinearWindow()
    batch: list[TokensStage] = _one_stage(8 * 48 * 1024)  # tokens per optimizer step, all ranks
    seq_len: list[TokensStage] = _one_stage(48 * 1024)  # tokens per sequence (one micro-batch)
    muon_momentum: MomentumWarmup = MomentumWarmup()

    @field_validator("batch", "seq_len")
    @classmethod
    def _stages(cls, v: list[TokensStage]) -> list[TokensStage]:
        return _check_stages(v)


class DataConfig(_Section):
    """FineWeb-format shards; globs, validated before training starts."""

    train_files: str = "data/fineweb10B/fineweb_train_*.bin"
    val_files: str = "data/fineweb10B/fineweb_val_*.bin"
    val_tokens: Int = Field(10_485_760, gt=0)
    val_seq_len: Int = Field(4 * 64 * 1024, gt=0)
    epochs: Int = Field(1, gt=0)  # passes over the train files (small corpora need several)


class EvalConfig(_Section):
    every: Int = Field(125, ge=0)  # 0: validate only at the end
    # with every > 0, also validate the initial weights (step 0), as the record does; sweeps can
    # drop it: every trial of one seed starts from the same weights, and in a short run it is a
    # large share of the validation
    at_start: StrictBool = True


class RuntimeConfig(_Section):
    seed: Int = 0
    device: Literal["cpu", "cuda"] = "cuda"
    compile: StrictBool = True  # torch.compile the model (CUDA only)
    warmup_steps: Int = Field(10, ge=0)  # untimed steps on real shapes, then the state is reset
    threads: Int | None = Field(None, gt=0)  # CPU threads; None: torch's default
    checkpoint_every: Int = Field(0, ge=0)  # 0: never
    checkpoint_dir: str | None = None


class TrainConfig(_Section):
    """One training run."""

    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    data: DataConfig = DataConfig()
    eval: EvalConfig = EvalConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def to_yaml(self) -> str:
        """This config as YAML that `load_config` reads back to an equal config."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def check_for_run(self, world_size: int) -> None:
        """Cross-field checks that need the world size; raises InputError naming the key."""
        for i, stage in enumerate(self.schedule.seq_len):
            if stage.tokens % ATTN_BLOCK:
                raise InputError(f"schedule.seq_len[{i}].tokens={stage.tokens} must be a multiple of {ATTN_BLOCK}")
        if self.data.val_seq_len % ATTN_BLOCK:
            raise InputError(f"data.val_seq_len={self.data.val_seq_len} must be a multiple of {ATTN_BLOCK}")
        if self.data.val_tokens % self.data.val_seq_len:
            raise InputError(
                f"data.val_tokens={self.data.val_tokens} must be a multiple of data.val_seq_len={self.data.val_seq_len}"
            )
        from trainer.schedules import Schedules  # the schedule knows which stages meet

        for step, batch, seq_len in Schedules(self.schedule, self.model).batch_shapes():
            if batch % (seq_len * world_size):
                raise InputError(
                    f"at step {step} schedule.batch gives {batch} tokens, not divisible by "
                    f"{world_size} rank(s) x schedule.seq_len {seq_len}"
                )


# ---------------------------------------------------------------------------------------
# Loading


def preset_names() -> list[str]:
    """Names of the presets shipped in trainer/presets/."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config(source: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Defaults, overlaid by a preset name or YAML path, then by `KEY=VALUE` overrides."""
    data: dict[str, Any] = {}
    where = "defaults"
    lines: dict[tuple, int | str] = {}  # key path -> line in the file, or the --set that gave it
    if source is not None:
        path = _find_source(str(source))
        where = str(path)
        try:
            root = compose(read_text(path, "a trainer config YAML"))
            loaded = construct(root)
        except YamlDataError as e:
            raise InputError(f"{path}:{e.line}: {e}") from None
        lines = _key_lines(root)
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError(f"{path}: expected a mapping of config sections, got {type(loaded).__name__}")
        data = loaded or {}
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value, item)
        lines = {k: v for k, v in lines.items() if k[: len(key.split("."))] != tuple(key.split("."))}
        lines[tuple(key.split("."))] = f"--set {item}"
    return config_from_dict(data, where=where, lines=lines)


def config_from_dict(
    data: dict[str, Any], where: str = "config", lines: dict[tuple, int | str] | None = None
) -> TrainConfig:
    """Validate a nested dict as a TrainConfig; errors name the key, the line and what is allowed."""
    data = _resolve_fixture_paths(copy.deepcopy(data))
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        raise InputError(_explain(e, where, lines or {})) from None


def _find_source(source: str) -> Path:
    if source in preset_names():
        return PRESETS_DIR / f"{source}.yaml"
    path = Path(source).expanduser()
    if path.is_file():
        return path
    raise InputError(f"config '{source}': no such file, and not a preset (presets: {', '.join(preset_names())})")


def parse_override(item: str) -> tuple[str, Any]:
    """`KEY=VALUE` from the command line, the value read as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise InputError(f"--set '{item}': expected KEY=VALUE, e.g. --set optim.muon_lr=0.04")
    try:
        value = load(raw) if raw.strip() else None
    except YamlDataError as e:
        raise InputError(f"--set {key}: value {quoted(raw)} is not a YAML value: {e}") from None
    return key.strip(), value


def _set_dotted(data: dict[str, Any], key: str, value: Any, item: str) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError(f"--set {item}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _resolve_fixture_paths(data: dict[str, Any]) -> dict[str, Any]:
    """`@fixtures/NAME` in data paths points into the fixtures shipped with the package."""
    section = data.get("data")
    if isinstance(section, dict):
        for key in ("train_files", "val_files"):
            value = section.get(key)
            if isinstance(value, str) and value.startswith(FIXTURES_PREFIX):
                section[key] = str(FIXTURES_DIR / value[len(FIXTURES_PREFIX) :])
    return data


def _key_lines(root: yaml.Node | None) -> dict[tuple, int]:
    """Map each key path in a composed YAML document to its 1-based line number."""
    out: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = path + (k.value,)
                out[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    if root is not None:
        walk(root, ())
    return out


def _explain(error: ValidationError, where: str, lines: dict[tuple, int | str]) -> str:
    messages = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("linear", "stages")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _source(loc, lines)
        at = line if isinstance(line, str) else f"{where}:{line}" if line else where
        if err["type"] == "extra_forbidden":
            known = _known_keys(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?" if close else f"known keys: {', '.join(known)}"
            messages.append(f"{at}: unknown key '{key}'; {hint}")
        else:
            got = err.get("input")
            shown = f" (got {quoted(got)})" if not isinstance(got, dict) else ""
            messages.append(f"{at}: {key}: {err['msg']}{shown}")
    return "invalid config: " + "; ".join(messages)  # one line: a CLI error, a trial's error column


def _source(loc: tuple, lines: dict[tuple, int | str]) -> int | str | None:
    """Where the value at `loc` came from: the --set that gave it, else its line in the file.

    A check across a section's keys (num_layers even, heads x head_dim = model_dim) fails at the
    section, which the file holds; when a --set changed a key of that section, the --set is where
    to look.
    """
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    if isinstance(line, str):
        return line
    sets = [v for k, v in lines.items() if isinstance(v, str) and len(k) > len(loc) and k[: len(loc)] == loc]
    return ", ".join(sets) if sets else line


def _known_keys(loc: tuple) -> list[str]:
    model: Any = TrainConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = field.annotation
        inner = getattr(model, "__args__", None)
        if inner:  # list[X], X | Y: look inside the first model type
            model = next((a for a in inner if hasattr(a, "model_fields")), model)
    return sorted(getattr(model, "model_fields", {}))
