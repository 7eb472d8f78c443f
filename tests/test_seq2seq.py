"""The seq2seq task (token sequences to token sequences): reading pairs, teacher forcing, the
encoder-decoder's wiring, per-token scoring shared by the model and the baseline, greedy
decoding, and one real study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import best_plots

from tuner import samples
from tuner.config import TrialConfig
from tuner.data import DataOptions, Pairs, load
from tuner.errors import InputError
from tuner.space import parse_space


def pairs_npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "pairs.npz"
    np.savez(path, **(arrays or samples.reversals(200, 6, seed=1)))
    return path


def options(path: Path) -> DataOptions:
    return DataOptions(path=str(path), task="seq2seq")


def test_pairs_load_with_their_vocabularies_and_teacher_forcing(tmp_path: Path) -> None:
    pairs = load(options(pairs_npz(tmp_path)), 1)
    assert isinstance(pairs, Pairs) and pairs.metric == "accuracy"
    assert pairs.source_vocab == 13 and pairs.target_vocab == 13 and pairs.n_outputs == 13
    a = pairs.for_config(TrialConfig())
    decoder = a.x_train["decoder"]
    assert (decoder[:, 0] == 13).all(), "the start token is the target vocabulary's size"
    assert np.array_equal(decoder[:, 1:], a.y_train[:, :-1]), "the target, shifted right"
    assert a.input_shape == (6,)


@pytest.mark.parametrize(
    "arrays, field, says",
    [
        ({"encoder": np.ones((9, 4), "int64")}, None, "missing arrays"),
        (
            {"encoder": np.ones((9, 4)), "decoder_target": np.ones((9, 4), "int64")},
            "encoder",
            "integer",
        ),
        (
            {"encoder": -np.ones((9, 4), "int64"), "decoder_target": np.ones((9, 4), "int64")},
            "encoder",
            ">= 0",
        ),
        (
            {"encoder": np.ones((9, 4), "int64"), "decoder_target": np.ones((8, 4), "int64")},
            "decoder_target",
            "samples",
        ),
        (
            {"encoder": np.ones((9, 4), "int64"), "decoder_target": np.zeros((9, 4), "int64")},
            "decoder_target",
            "empty",
        ),
    ],
)
def test_bad_pairs_are_refused_in_one_line(tmp_path: Path, arrays, field, says: str) -> None:
    with pytest.raises(InputError, match=says) as e:
        load(options(pairs_npz(tmp_path, **arrays)), 1)
    assert e.value.field == field and "\n" not in str(e.value)


def test_a_table_is_refused_for_seq2seq(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="an .npz with arrays encoder and decoder_target"):
        load(options(path), 1)


def test_window_and_text_options_do_not_apply() -> None:
    for name, value in (("window", 8), ("vocab_size", 100), ("pooling", "mean")):
        with pytest.raises(InputError, match="does not apply to task 'seq2seq'"):
            parse_space({"task": "seq2seq", "params": {name: value}}, source="s.yaml")
    from tuner.space import load_space

    space = load_space(Path(__file__).parents[1] / "search_spaces" / "seq2seq.yaml")
    assert space.task == "seq2seq" and space.start_with[0]["units"] == 256


def test_the_baseline_scores_every_token_up_to_each_end(tmp_path: Path) -> None:
    from tuner.baselines import compute, token_mask

    target = np.array([[3, 4, 0, 0], [5, 0, 0, 0]])
    assert token_mask(target).tolist() == [[True, True, True, False], [True, True, False, False]]
    b = compute(load(options(pairs_npz(tmp_path)), 1), 1)
    assert b["metric"] == "accuracy" and b["best"] == "majority_by_position"
    assert 0 < b["scores"]["majority_by_position"]["test_accuracy"] < 0.5


def test_the_encoder_decoder_is_causal_and_scored_like_the_baseline(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    from tuner.baselines import token_mask
    from tuner.model import build_model
    from tuner.training import loss_and_metrics

    pairs = load(options(pairs_npz(tmp_path)), 1)
    config = TrialConfig(units=(8,), embedding_dim=4, bidirectional=True)
    model = build_model(config, "seq2seq", (6,), 13, vocab=(13, 13))
    assert model.get_layer("decoder_lstm").units == 16, "both directions' states, joined"
    a = pairs.for_config(config)
    x = {k: v[:5] for k, v in a.x_val.items()}
    out = np.asarray(model.predict(x, verbose=0))
    assert out.shape == (5, 6, 13) and np.allclose(out.sum(axis=2), 1.0, atol=1e-5)
    changed = {**x, "decoder": x["decoder"].copy()}
    changed["decoder"][:, 3:] = 7  # what follows step 2 does not change steps 0..2
    np.testing.assert_allclose(
        np.asarray(model.predict(changed, verbose=0))[:, :3], out[:, :3], atol=1e-6
    )
    loss, metrics = loss_and_metrics(config, "seq2seq", 13, None)
    model.compile(loss=loss, metrics=metrics)
    scores = model.evaluate(a.x_val, a.y_val, verbose=0, return_dict=True)
    pred = np.asarray(model.predict(a.x_val, verbose=0)).argmax(axis=2)
    mask = token_mask(a.y_val)
    assert scores["accuracy"] == pytest.approx(np.mean((pred == a.y_val)[mask]), abs=1e-4)


@pytest.mark.slow
def test_a_seq2seq_study_runs_and_decodes_greedily(space_file, tmp_path: Path, capsys) -> None:
    import optuna

    from tuner.cli import main
    from tuner.storage import embedded

    data = pairs_npz(tmp_path)
    space = space_file("""
task: seq2seq
objective: val_accuracy
epochs: 2
sampler: random
pruner: none
params:
  embedding_dim: 8
  units: 16
  bidirectional: [false, true]
  batch_size: 16
  learning_rate: 0.01
""")
    assert (
        main(["run", str(space), "--data", str(data), "--study", "s", "--trials", "1", "-q"]) == 0
    )
    storage, tracking, _ = embedded()
    study = optuna.load_study(study_name="s", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done, [(t.state.name, t.params, t.user_attrs.get("reason")) for t in study.trials]
    assert 0 < study.best_trial.user_attrs["test_accuracy"] <= 1
    assert "best_accuracy_by_position.png" in best_plots(study, tracking)
    out_file = tmp_path / "p.csv"
    assert main(["predict", "--study", "s", "--data", str(data), "-o", str(out_file)]) == 0
    out = pd.read_csv(out_file, dtype=str, keep_default_na=False)
    assert list(out.columns) == ["row", "predicted", "actual", "exact", "split"]
    assert len(out) == 200 and set(out["split"]) == {"train", "val", "test"}
    lengths = out["predicted"].str.split().str.len()
    assert lengths.max() <= 6, "decoding stops at the end or the target length"
    assert set(" ".join(out["predicted"]).split()) <= {str(i) for i in range(1, 13)}
    # a shorter source is padded as in training; a longer one is refused, not cut
    short = tmp_path / "short.npz"
    np.savez(short, encoder=np.array([[3, 1, 2, 0], [5, 4, 0, 0]]))
    assert main(["predict", "--study", "s", "--data", str(short), "-o", str(out_file)]) == 0
    assert len(pd.read_csv(out_file)) == 2
    long = tmp_path / "long.npz"
    np.savez(long, encoder=np.ones((2, 8), "int64"))
    capsys.readouterr()
    assert (
        main(["predict", "--study", "s", "--data", str(long), "-o", str(tmp_path / "x.csv")]) == 2
    )
    assert not (tmp_path / "x.csv").exists()
    assert "encoder: a source of 8 tokens is longer than the model's (6)" in capsys.readouterr().err
