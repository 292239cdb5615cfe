"""Params: how one trainer key is searched, as pydantic models that also speak Optuna.

A leaf is one number (or one categorical value) of a proposal: `FloatParam`, `IntParam`,
`ChoiceParam`, `FixedParam`. A schedule family, `LinearParam` or `StagesParam`, builds one
trainer value from several leaves. Every param names its leaves after where their values go
(`schedule.window.end`, `schedule.batch.0.until`), and those names are the Optuna parameter names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field

from search_spaces.yaml_data import to_yaml

# ---------------------------------------------------------------------------------------
# Distributions of one number (leaves)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Leaf(_Model):
    """One number (or one categorical value) of a proposal."""

    @property
    def searched(self) -> bool:
        return True

    def leaves(self, key: str) -> list[tuple[str, Any]]:
        return [(key, self)]

    def assemble(self, values: dict[str, Any], key: str) -> Any:
        return values[key]


class FloatParam(_Leaf):
    """`{float: [low, high], log: bool, step: s}`: a float, uniform (or log-uniform) in [low, high]."""

    kind: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self) -> list[Any] | None:
        if self.step is None:
            return None
        n = round((self.high - self.low) / self.step)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def coerce(self, value: Any) -> float:
        value = float(value)
        return round(value, 12) if self.step is not None else value  # 0.35000000000000003 -> 0.35

    def reps(self) -> list[Any]:
        return [self.low, self.high]

    def span(self) -> tuple[float, float] | None:
        return (self.low, self.high)


class IntParam(_Leaf):
    """`{int: [low, high], step: k, log: bool}`: an integer in [low, high] (inclusive)."""

    kind: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    step: int = 1

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self) -> list[Any] | None:
        return list(range(self.low, self.high + 1, self.step))

    def coerce(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        return value

    def reps(self) -> list[Any]:
        return [self.low, self.high]

    def span(self) -> tuple[float, float] | None:
        return (self.low, self.high)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


class ChoiceParam(_Leaf):
    """`{choice: [a, b, ...]}`: one of the listed YAML values (lists and mappings allowed)."""

    kind: Literal["choice"] = "choice"
    values: list[Any]

    @property
    def labels(self) -> list[Any]:
        """What Optuna sees: the values themselves when all are scalars, else their YAML text."""
        if all(_is_scalar(v) for v in self.values):
            return list(self.values)
        return [to_yaml(v) for v in self.values]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return self.coerce(trial.suggest_categorical(name, self.labels))

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.CategoricalDistribution(self.labels)

    def grid(self) -> list[Any] | None:
        return self.labels

    def coerce(self, value: Any) -> Any:
        for label, v in zip(self.labels, self.values):
            if type(label) is type(value) and label == value:
                return v
        for v in self.values:
            if type(v) is type(value) and v == value:
                return v
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # Optuna may give 1 for 1.0
            for v in self.values:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v == value:
                    return v
        raise ValueError(f"{value!r} is not one of the choices {self.labels}")

    def reps(self) -> list[Any]:
        return list(self.values)

    def span(self) -> tuple[float, float] | None:
        nums = [v for v in self.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return (min(nums), max(nums)) if len(nums) == len(self.values) else None


class FixedParam(_Leaf):
    """`{fixed: value}` (or a bare scalar / list): a constant, not searched."""

    kind: Literal["fixed"] = "fixed"
    value: Any

    @property
    def searched(self) -> bool:
        return False

    def coerce(self, value: Any) -> Any:
        return self.value

    def reps(self) -> list[Any]:
        return [self.value]

    def span(self) -> tuple[float, float] | None:
        v = self.value
        return (v, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


Leaf = Annotated[FloatParam | IntParam | ChoiceParam | FixedParam, Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------
# Schedule families (values built from several numbers)


class LinearParam(_Model):
    """`{linear: {start, end}}` -> `{kind: linear, start: S, end: E}` (e.g. schedule.window)."""

    kind: Literal["linear"] = "linear"
    start: Leaf
    end: Leaf

    def leaves(self, key: str) -> list[tuple[str, Any]]:
        return [(f"{key}.start", self.start), (f"{key}.end", self.end)]

    def assemble(self, values: dict[str, Any], key: str) -> Any:
        return {"kind": "linear", "start": values[f"{key}.start"], "end": values[f"{key}.end"]}


class StageSpec(_Model):
    until: Leaf
    tokens: Leaf


class StagesParam(_Model):
    """`{stages: [{until, tokens}, ...]}` -> a stage list `[{until: u, tokens: t}, ...]`
    (schedule.batch, schedule.seq_len); with `kind: stages` -> `{kind: stages, stages: [...]}`
    (schedule.window)."""

    kind: Literal["stages"] = "stages"
    stages: list[StageSpec]
    tagged: bool = False

    def _prefix(self, key: str) -> str:
        return f"{key}.stages" if self.tagged else key

    def leaves(self, key: str) -> list[tuple[str, Any]]:
        p = self._prefix(key)
        out: list[tuple[str, Any]] = []
        for i, s in enumerate(self.stages):
            out += [(f"{p}.{i}.until", s.until), (f"{p}.{i}.tokens", s.tokens)]
        return out

    def assemble(self, values: dict[str, Any], key: str) -> Any:
        p = self._prefix(key)
        stages = [
            {"until": values[f"{p}.{i}.until"], "tokens": values[f"{p}.{i}.tokens"]} for i in range(len(self.stages))
        ]
        return {"kind": "stages", "stages": stages} if self.tagged else stages


Param = Annotated[
    FloatParam | IntParam | ChoiceParam | FixedParam | LinearParam | StagesParam, Field(discriminator="kind")
]


def representative_values(params: dict[str, Param], k: int) -> dict[str, Any]:
    """Representative values of every leaf, by name: the k-th of (low, high, each choice),
    clamped; stage `until`s made strictly increasing so the list itself is valid."""
    values: dict[str, Any] = {}
    for key, p in params.items():
        for name, leaf in p.leaves(key):
            reps = leaf.reps()
            values[name] = reps[min(k, len(reps) - 1)]
        if isinstance(p, StagesParam):
            names = [n for n, _ in p.leaves(key) if n.endswith(".until")]
            untils = sorted(values[n] for n in names)
            for i in range(1, len(untils)):
                if untils[i] <= untils[i - 1]:
                    untils[i] = untils[i - 1] + 1e-6
            for n, u in zip(names, untils):
                values[n] = u
    return values
