"""sample(trial, space) with fixed and real trials: conditional parameters, per-layer units."""

from __future__ import annotations

import re

import optuna
import pytest
from optuna.trial import FixedTrial

from tuner.config import PARAMS, TrialConfig
from tuner.sampling import sample
from tuner.space import load_space, parse_space

SPACE = {
    "epochs": 12,
    "params": {
        "layers": {"low": 1, "high": 3},
        "units": {"low": 8, "high": 64},
        "units_schedule": ["equal", "shrink", "per_layer"],
        "bidirectional": [False, True],
        "optimizer": ["adam", "adamw", "rmsprop", "sgd"],
        "momentum": {"low": 0.0, "high": 0.9},
        "schedule": ["constant", "exponential"],
        "decay_rate": {"low": 0.5, "high": 0.99},
    },
}


def space(raw=SPACE):
    return parse_space(raw, source="test.yaml")


def test_fixed_trial_gives_every_hyperparameter() -> None:
    config = sample(
        FixedTrial(
            {
                "layers": 2,
                "units": 32,
                "units_schedule": "shrink",
                "bidirectional": True,
                "merge_mode": "concat",
                "optimizer": "sgd",
                "momentum": 0.5,
                "nesterov": False,
                "schedule": "constant",
            }
        ),
        space(),
        seed=7,
    )
    assert config.units == (32, 16)
    assert (config.optimizer, config.momentum, config.bidirectional) == ("sgd", 0.5, True)
    assert config.epochs == 12 and config.seed == 7
    assert config.activation == "tanh", "unset parameters keep Keras's defaults"


def test_conditional_parameters_are_only_suggested_when_they_apply() -> None:
    trial = FixedTrial(
        {
            "layers": 1,
            "units": 16,
            "units_schedule": "equal",
            "bidirectional": False,
            "optimizer": "adam",
            "schedule": "constant",
        }
    )
    config = sample(trial, space())
    assert config.momentum == TrialConfig.momentum
    assert config.decay_rate == TrialConfig.decay_rate
    assert config.merge_mode == TrialConfig.merge_mode


def test_per_layer_units_are_suggested_up_to_the_depth() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        config = sample(trial, space())
        if config.units_schedule == "per_layer":
            names = {n for n in trial.params if re.fullmatch(r"units(_\d+)?", n)}
            assert names == {f"units_{i}" for i in range(1, config.layers + 1)}
        assert len(config.units) == config.layers
        assert all(8 <= u <= 64 or config.units_schedule == "shrink" for u in config.units)
        study.tell(trial, 0.0)


@pytest.mark.parametrize("units, layers, expected", [(64, 3, (64, 32, 16)), (8, 3, (8, 4, 4))])
def test_shrink_halves_with_a_floor(units: int, layers: int, expected: tuple[int, ...]) -> None:
    raw = {"params": {"layers": layers, "units": units, "units_schedule": "shrink"}}
    assert sample(FixedTrial({}), space(raw)).units == expected


def test_max_epochs_caps_the_budget_and_defaults_override() -> None:
    config = sample(FixedTrial({}), space({"epochs": 30}), max_epochs=5, defaults={"window": 99})
    assert (config.epochs, config.window) == (5, 99)


def test_random_trials_respect_every_bound() -> None:
    """Sample the shipped forecast space many times: every value inside the schema's bounds."""
    from pathlib import Path

    full = load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "forecast.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(60):
        trial = study.ask()
        config = sample(trial, full)
        for name, spec in PARAMS.items():
            if name == "units":
                continue
            value = getattr(config, name)
            if spec.low is not None:
                assert spec.low <= value <= spec.high, (name, value)
            if spec.choices is not None:
                assert value in spec.choices
        assert config.cudnn_eligible
        study.tell(trial, 0.0)


def test_the_fused_kernel_record_follows_the_backend_and_the_mask() -> None:
    # TensorFlow's cuDNN path takes the right-padded masks of text and seq2seq models
    for task in ("forecast", "classify", "text", "tag", "seq2seq"):
        assert TrialConfig().fused_kernel("tensorflow", task)
    # JAX's and PyTorch's fused LSTMs take no mask: Keras runs its step loop there
    for backend in ("jax", "torch"):
        assert TrialConfig().fused_kernel(backend, "forecast")
        assert TrialConfig(mask_padding=False).fused_kernel(backend, "text")
        assert not TrialConfig(mask_padding=True).fused_kernel(backend, "text")
        assert not TrialConfig().fused_kernel(backend, "seq2seq")
        # mask_padding means nothing outside text: a classifier has no embedding to mask
        assert TrialConfig(mask_padding=True).fused_kernel(backend, "classify")
    # a stateful LSTM on PyTorch takes the step loop tuner forces (keras-team/keras#23462)
    assert not TrialConfig(stateful=True).fused_kernel("torch", "forecast")
    assert TrialConfig(stateful=True).fused_kernel("jax", "forecast")
    # an ineligible layer is off the kernel everywhere
    for backend in ("tensorflow", "jax", "torch"):
        assert not TrialConfig(use_bias=False).fused_kernel(backend, "forecast")


def test_cudnn_eligibility_and_flat_params() -> None:
    assert TrialConfig().cudnn_eligible
    assert not TrialConfig(recurrent_dropout=0.1).cudnn_eligible
    assert not TrialConfig(activation="relu").cudnn_eligible
    params = TrialConfig(layers=2, units=(64, 32)).as_params()
    assert (params["units_1"], params["units_2"]) == (64, 32) and "units" not in params


def test_go_backwards_is_not_drawn_for_a_bidirectional_trial() -> None:
    """Issue 13: bidirectional + go_backwards failed every such trial inside Keras."""
    from tuner.space import parse_space

    both = parse_space(
        {"params": {"bidirectional": [False, True], "go_backwards": [False, True]}},
        source="s.yaml",
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        config = sample(trial, both)
        seen.add((config.bidirectional, config.go_backwards))
        assert not (config.bidirectional and config.go_backwards)
        assert ("go_backwards" in trial.params) == (not config.bidirectional)
    assert seen == {(False, False), (False, True), (True, False)}


def test_epochs_can_be_searched_within_the_cap() -> None:
    from optuna.trial import FixedTrial

    from tuner.errors import InputError
    from tuner.sampling import sample
    from tuner.space import parse_space

    space = parse_space({"params": {"epochs": {"low": 5, "high": 40}}}, source="s.yaml")
    assert space.epochs == 40 and space.capped_epochs(30) == 30  # what budget and pruner plan
    assert sample(FixedTrial({"epochs": 12}), space).epochs == 12
    assert sample(FixedTrial({"epochs": 35}), space, max_epochs=30).epochs == 30
    plain = parse_space({"epochs": 7, "params": {}}, source="s.yaml")
    assert sample(FixedTrial({}), plain).epochs == 7, "the top-level epochs when none is drawn"
    with pytest.raises(InputError, match="epochs is set twice"):
        parse_space({"epochs": 7, "params": {"epochs": [5, 10]}}, source="s.yaml")
