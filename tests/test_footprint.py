"""A trial's size before it is built: the parameter count against Keras's own on a dozen
shapes, the limits and their reasons, and a real study whose trials are over the limit."""

from __future__ import annotations

import numpy as np
import pytest

from tuner.config import TrialConfig as C
from tuner.footprint import MAX_MEMORY_ENV, MAX_PARAMS_ENV, Footprint, estimate, limits

CASES = [
    (C(units=(8,)), "forecast", (10, 3), 2, {}),
    (C(layers=3, units=(16, 8, 4), bidirectional=True), "forecast", (10, 3), 4, {}),
    (C(units=(8,), bidirectional=True, merge_mode="sum"), "classify", (12, 2), 1, {}),
    (
        C(
            units=(8,),
            frontend="conv",
            conv_filters=4,
            conv_kernel=3,
            conv_stride=2,
            fcn=True,
            fcn_filters=5,
            pooling="attention",
        ),
        "classify",
        (20, 2),
        3,
        {},
    ),
    (
        C(units=(8,), residual="last", highway=True),
        "forecast",
        (10, 3),
        4,
        {"target_index": [2, 0]},
    ),
    (
        C(units=(8,), decoder="seq2seq", bidirectional=True),
        "forecast",
        (10, 3),
        6,
        {"target_index": [2, 0]},
    ),
    (
        C(layers=2, units=(6, 4), stateful=True),
        "forecast",
        (5, 2),
        3,
        {"target_index": [1], "batch": 2},
    ),
    (C(units=(8,), vocab_size=50, embedding_dim=6, pooling="attention"), "text", (7,), 3, {}),
    (C(layers=2, units=(8, 4)), "tag", (9, 2), 3, {"regression": True}),
    (C(units=(8,), embedding_dim=4, bidirectional=True), "seq2seq", (6,), 13, {"vocab": (13, 13)}),
    (C(units=(8,), pooling="mean", layer_dropout=0.2, l2=1e-4), "forecast", (10, 3), 2, {}),
    (C(units=(8,), residual="ridge"), "forecast", (10, 3), 2, {"ridge": True}),
]


@pytest.mark.parametrize("config, task, shape, n_outputs, kw", CASES)
def test_the_parameter_count_is_keras_s_own(config, task, shape, n_outputs, kw) -> None:
    pytest.importorskip("keras")
    from tuner.model import build_model
    from tuner.ridge import Ridge

    if kw.get("ridge"):
        kw = {**kw, "ridge": Ridge(np.zeros((30, 2), "float32"), np.zeros(2, "float32"), 1.0)}
    model = build_model(config, task, shape, n_outputs, **kw)
    size = estimate(
        config,
        task,
        shape,
        n_outputs,
        n_targets=len(kw.get("target_index", [0])),
        vocab=kw.get("vocab"),
        batch=kw.get("batch"),
    )
    assert size.params == model.count_params()


def test_memory_grows_with_the_batch_and_the_window() -> None:
    small = estimate(C(units=(64,), batch_size=32), "forecast", (24, 4), 1)
    assert estimate(C(units=(64,), batch_size=64), "forecast", (24, 4), 1).memory_bytes > (
        small.memory_bytes
    )
    assert estimate(C(units=(64,), batch_size=32), "forecast", (96, 4), 1).memory_bytes > (
        small.memory_bytes
    )
    assert small.memory_bytes > 4 * 4 * small.params  # weights, gradient and Adam's moments


def test_limits_say_what_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    size = Footprint(params=5000, memory_bytes=300 * 2**20)
    assert size.over(None, None) is None and size.over(5000, 300.0) is None
    assert size.over(4000, None) == "5,000 parameters, over --max-params 4,000"
    assert size.over(None, 100.0) == "an estimated 300 MiB to train, over the limit of 100 MiB"
    monkeypatch.setenv(MAX_PARAMS_ENV, "123")
    monkeypatch.setenv(MAX_MEMORY_ENV, "45.5")
    assert limits() == (123, 45.5)
    monkeypatch.delenv(MAX_MEMORY_ENV)
    params, memory = limits()
    assert params == 123 and memory is not None and memory > 100, "the machine's memory"


@pytest.mark.slow
def test_a_trial_over_the_limit_is_pruned_before_it_is_built(space_file, co2_csv) -> None:
    import optuna
    from conftest import CO2_OPTIONS

    from tuner.cli import main
    from tuner.storage import embedded

    space = space_file("""
task: forecast
epochs: 2
sampler: random
pruner: none
params:
  units: [8, 256]
  window: 8
start_with:
  - {units: 256}
  - {units: 8}
""")
    argv = ["run", str(space), "--data", str(co2_csv), *CO2_OPTIONS, "--study", "s", "-q"]
    assert main([*argv, "--trials", "2", "--max-params", "5000"]) == 0
    storage, _, _ = embedded()
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state.name for t in trials] == ["PRUNED", "COMPLETE"]
    assert trials[0].user_attrs["reason"].startswith("not built: 264,449 parameters, over")
    done = trials[1].user_attrs
    assert done["params"] == done["params_estimated"] == 4 * (8 * 1 + 64 + 8) + 9
