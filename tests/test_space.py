"""Loading and validating search spaces: every error names file, line, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuner.errors import InputError
from tuner.space import load_space, parse_space

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["forecast.yaml", "classify.yaml"])
def test_shipped_spaces_load_and_stay_cudnn_eligible(name: str) -> None:
    space = load_space(ROOT / "search_spaces" / name)
    assert space.searched, "a shipped space searches something"
    assert space.cudnn_warnings() == []
    assert space.start_with, "shipped spaces start with textbook configurations"


def test_forms_become_distributions(space_file) -> None:
    space = load_space(
        space_file(
            "params:\n"
            "  layers: {low: 1, high: 3}\n"
            "  learning_rate: {low: 1e-4, high: 1.0e-2, log: true}\n"
            "  optimizer: [adam, sgd]\n"
            "  activation: tanh\n"
        )
    )
    assert space.searched["layers"] == IntDistribution(1, 3)
    assert space.searched["learning_rate"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space.searched["optimizer"] == CategoricalDistribution(["adam", "sgd"])
    assert space.fixed == {"activation": "tanh"}
    assert (space.task, space.objective, space.direction) == (
        "forecast",
        "val_mae_original",
        "minimize",
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("params:\n  units: [16, 32\n", ":3: invalid YAML"),
        ("params: !!python/object/apply:os.system [echo hi]\n", ":1: invalid YAML"),
        (
            "params:\n  unitz: 3\n",
            ":2: params.unitz: unknown parameter 'unitz' (did you mean 'units'?)",
        ),
        ("params:\n  zzz: 3\n", ":2: params.zzz: unknown parameter 'zzz'; valid: layers, units"),
        ("params:\n  units: many\n", ":2: params.units: units must be a number, got 'many'"),
        ("params:\n  units: 3.5\n", "params.units: units must be a whole number, got 3.5"),
        (
            "params:\n  layers: 1\n  units: {low: 128, high: 16}\n",
            ":3: params.units: `low <= high` must hold",
        ),
        (
            "params:\n  optimizer: [adam, adamax]\n",
            "params.optimizer[1]: unknown optimizer 'adamax' (did you mean 'adam'?)",
        ),
        ("params:\n  dropout: 1.5\n", "params.dropout: dropout must be in [0.0, 0.95], got 1.5"),
        ("params:\n  bidirectional: {low: 0, high: 1}\n", "takes one value or a list of choices"),
        ("params:\n  bidirectional: yes please\n", "must be true or false, got 'yes please'"),
        ("params:\n  units: {low: 4, hi: 8}\n", "params.units.hi: unknown range key 'hi'"),
        ("params:\n  units: {low: 4}\n", "a range needs both low and high"),
        ("params:\n  learning_rate: {low: 0, high: 1, log: true}\n", "params.learning_rate"),
        ("tasks: forecast\n", ":1: tasks: unknown setting 'tasks' (did you mean 'task'?)"),
        ("task: regress\n", ":1: task: unknown task 'regress'"),
        ("objective: val_accuracy\n", "objective: unknown objective 'val_accuracy' for forecast"),
        ("epochs: 0\n", "epochs: expected a whole number in [1, 100000], got 0"),
        ("sampler: annealing\n", ":1: sampler.name: unknown sampler 'annealing'; valid: tpe,"),
        ("pruner: {name: median, n_warmup: 2}\n", ":1: pruner: invalid arguments for pruner"),
        (
            "objective: val_loss\nparams:\n  scaler: [standard, minmax]\n",
            "val_loss is not comparable across trials when scaler is searched",
        ),
        (
            "params:\n  units: {low: 8, high: 32}\nstart_with:\n  - {units: 64}\n",
            ":4: start_with[0].units: value 64 is outside the searched values [8, 32]",
        ),
        ("params:\n  units: 8\nstart_with:\n  - {units: 8}\n", "'units' is not a searched"),
        ("task: classify\nparams:\n  loss: mse\n", "'loss' does not apply to task 'classify'"),
        ("- 1\n- 2\n", "a search space is a mapping of settings, got list"),
        ("task: classify\nparams:\n  window: auto\n", ":3: params.window: window: auto applies"),
        ("params:\n  window: automatic\n", "params.window: window must be a number"),
        ("min_steps_per_epoch: -1\n", "min_steps_per_epoch: expected a whole number"),
        ("task: classify\nparams:\n  residual: ridge\n", "'residual' does not apply to task"),
        (
            "params:\n  bidirectional: true\n  go_backwards: true\n",
            ":3: params.go_backwards: go_backwards: true cannot go with bidirectional: true",
        ),
        # issue 10: NaN / inf anywhere, duplicate keys, alias bombs, nesting past the parser
        ("params:\n  dropout: {low: 0.0, high: 0.3, step: .nan}\n", ":2: params.dropout.step: "),
        ("params:\n  dropout: {low: 0.0, high: 0.3, step: .inf}\n", "must be a finite number"),
        ("pruner: {name: threshold, upper: .nan}\n", ":1: pruner.upper: must be a finite number"),
        ("sampler: {name: tpe, prior_weight: -.inf}\n", "sampler.prior_weight: must be a finite"),
        ("epochs: 5\nparams: {layers: 1}\nepochs: 50\n", ":3: epochs: 'epochs' appears twice"),
        ("params:\n  units: 8\n  units: 16\n", ":3: units: 'units' appears twice"),
        (
            "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(
                f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "more than 20,000 values once aliases are expanded",
        ),
        ("params: " + "[" * 3000 + "]" * 3000 + "\n", "invalid YAML: nested too deeply"),
    ],
)
def test_errors_name_file_line_field_value(space_file, text: str, expected: str) -> None:
    path = space_file(text)
    with pytest.raises(InputError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_a_space_file_past_the_size_cap_is_refused(tmp_path: Path, monkeypatch) -> None:
    import tuner.space

    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 200 + "task: forecast\n")
    monkeypatch.setattr(tuner.space, "MAX_SPACE_BYTES", 1000)
    with pytest.raises(InputError, match=r"big.yaml: 2,015 bytes; a search space is at most 1,000"):
        load_space(path)


def test_missing_file() -> None:
    with pytest.raises(InputError, match=r"^nope.yaml: no such file$"):
        load_space("nope.yaml")


def test_space_leaving_cudnn_says_so(space_file) -> None:
    space = load_space(
        space_file(
            "params:\n  activation: [tanh, relu]\n  recurrent_dropout: {low: 0, high: 0.3}\n"
        )
    )
    warnings = space.cudnn_warnings()
    assert len(warnings) == 2
    assert "params.activation can be 'relu'" in warnings[0]
    assert "params.recurrent_dropout can be 0.3" in warnings[1]


def test_grid_sampler_needs_discrete_ranges(space_file) -> None:
    ok = load_space(
        space_file(
            "sampler: grid\nparams:\n  layers: {low: 1, high: 2}\n  bidirectional: [false, true]\n"
        )
    )
    assert ok.sampler == {"name": "grid"}
    with pytest.raises(InputError, match="grid sampler needs every searched parameter"):
        load_space(space_file("sampler: grid\nparams:\n  dropout: {low: 0, high: 0.5}\n"))


def test_command_line_sampler_and_pruner_replace_the_files(space_file) -> None:
    space = load_space(space_file("sampler: tpe\npruner: median\n"), sampler="qmc", pruner="none")
    assert (space.sampler, space.pruner) == ({"name": "qmc"}, {"name": "none"})
    with pytest.raises(InputError, match="unknown sampler 'anneal'"):
        load_space(space_file("params: {}\n"), sampler="anneal")
    # a new user's typo on the command line was blamed on the space file's line
    with pytest.raises(InputError) as typo:
        load_space(space_file("sampler: tpe\n"), pruner="hyperbnd")
    assert str(typo.value).startswith(
        "--pruner: unknown pruner 'hyperbnd' (did you mean 'hyperband'?)"
    )


def test_start_with_values_are_normalized_like_params(space_file) -> None:
    space = load_space(
        space_file(
            "params:\n  learning_rate: {low: 1e-4, high: 1e-2, log: true}\n"
            "start_with:\n  - {learning_rate: 1e-3}\n"
        )
    )
    assert space.start_with == ({"learning_rate": 0.001},)


def test_values_that_json_cannot_store_are_refused(space_file) -> None:
    with pytest.raises(InputError, match="values must be plain numbers, strings"):
        load_space(space_file("description: 2024-01-01\n"))


def test_window_auto_is_resolved_to_a_range(space_file) -> None:
    space = load_space(space_file("min_steps_per_epoch: 40\nparams:\n  window: auto\n"))
    assert space.window_auto and "window" not in space.searched
    assert space.min_steps_per_epoch == 40
    resolved = space.with_window(12, 72)
    window = resolved.searched["window"]
    assert (window.low, window.high, window.log) == (12, 72, True)
    assert not resolved.window_auto and resolved.raw["params"]["window"]["high"] == 72
    narrow = space.with_window(10, 20).searched["window"]
    assert (narrow.low, narrow.high, narrow.log) == (10, 20, False)


@pytest.mark.parametrize(
    "params, says",
    [
        ({"decoder": "seq2seq", "pooling": ["last", "mean"]}, "pooling applies only when decoder"),
        ({"decoder": "seq2seq", "residual": "last"}, "residual applies only when decoder"),
        ({"decoder": "seq2seq", "highway": [False, True]}, "highway applies only when decoder"),
        ({"optimizer": "adam", "momentum": 0.5}, "momentum applies only when optimizer is sgd"),
        ({"bidirectional": False, "merge_mode": "sum"}, "bidirectional is false here"),
        ({"fcn_filters": 32}, "fcn is false here"),
    ],
)
def test_a_parameter_that_can_never_apply_is_refused(params, says: str) -> None:
    with pytest.raises(InputError, match=says):
        parse_space({"task": "forecast", "params": params}, source="s.yaml")


def test_a_parameter_applies_when_its_condition_is_searched() -> None:
    from optuna.trial import FixedTrial

    from tuner.sampling import sample

    space = parse_space(
        {"params": {"decoder": ["dense", "seq2seq"], "pooling": ["last", "mean"]}}, source="s"
    )
    assert sample(FixedTrial({"decoder": "seq2seq"}), space).pooling == "last"  # not drawn
    assert sample(FixedTrial({"decoder": "dense", "pooling": "mean"}), space).pooling == "mean"
    space = parse_space(
        {"params": {"decoder": ["dense", "seq2seq"], "residual": ["none", "ridge"]}}, source="s"
    )
    assert sample(FixedTrial({"decoder": "seq2seq"}), space).residual == "none"  # not drawn


def test_the_grid_has_per_layer_axes_only_where_a_trial_can_draw_them() -> None:
    raw = {"sampler": "grid", "params": {"layers": [1, 2], "units": [8, 16]}}
    assert set(parse_space(raw, source="s").grid()) == {"layers", "units"}
    raw["params"]["units_schedule"] = ["equal", "per_layer"]
    assert set(parse_space(raw, source="s").grid()) >= {"units_1", "units_2"}
