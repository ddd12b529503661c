"""Strict config construction: coercion of what YAML and --set leave as strings, dotted keys in errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from sweettok.typed import ConfigError, build


@dataclass(kw_only=True)
class Stage:
    lr: float = 1e-3
    steps: int = 10
    betas: tuple[float, float] = (0.9, 0.99)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


@dataclass(kw_only=True)
class Job:
    name: str
    num_workers: int = 1
    use_gpu: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"
    paths: list[str] = field(default_factory=list)
    export: str | None = None
    stage: Stage = field(default_factory=Stage)
    stage_overrides: dict[str, Stage] = field(default_factory=dict)


def test_yaml_strings_are_coerced_to_the_declared_types():
    data = yaml.safe_load("""
        name: 2024
        num_workers: "4"
        use_gpu: "yes"
        stage: {lr: 1e-4, steps: 1e4, betas: [0.5, "0.9"]}
        stage_overrides: {stage1: {lr: 3e-4}}
    """)
    assert isinstance(data["stage"]["lr"], str)  # the reason for coercing: YAML 1.1 reads 1e-4 as a string
    job = build(Job, data)
    assert job.name == "2024" and job.num_workers == 4 and job.use_gpu is True
    assert job.stage == Stage(lr=1e-4, steps=10_000, betas=(0.5, 0.9))
    assert job.stage_overrides == {"stage1": Stage(lr=3e-4)}


@pytest.mark.parametrize("data, message", [
    ({"name": "a", "num_workers": "two"}, "num_workers: expected an integer, got 'two'"),
    ({"name": "a", "num_workers": 2.5}, "num_workers: expected an integer"),
    ({"name": "a", "use_gpu": "maybe"}, "use_gpu: expected true or false"),
    ({"name": "a", "precision": "fp16"}, "precision: expected one of 'fp32', 'bf16'"),
    ({"name": "a", "stage_overrides": {"stage1": {"lr": "fast"}}}, "stage_overrides.stage1.lr: expected a number"),
    ({"name": "a", "stage": {"stepz": 3}}, "stage.stepz: unknown setting; Stage takes lr, steps, betas"),
    ({"name": "a", "stage": {"betas": [0.9]}}, "stage.betas: expected 2 values, got 1"),
    ({"name": "a", "paths": "videos/"}, "paths: expected a list, got 'videos/'"),
    ({"name": "a", "paths": ["a", None]}, "paths[1]: a value is required"),
    ({"name": "a", "stage": {"steps": 0}}, "stage: steps must be >= 1, got 0"),
    ({"name": None}, "name: a value is required"),
])
def test_errors_name_the_dotted_key(data, message):
    with pytest.raises(ConfigError) as e:
        build(Job, data)
    assert str(e.value).startswith(message), str(e.value)


def test_optional_values_and_instances_pass_through():
    stage = Stage(lr=0.5)
    job = build(Job, {"name": "a", "export": None, "stage": stage})
    assert job.export is None and job.stage is stage
    assert build(Job, {"name": "a", "export": "s3://bucket/x"}).export == "s3://bucket/x"
