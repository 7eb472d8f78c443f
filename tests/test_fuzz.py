"""Bad input as a property, not case by case (issue 10): generated search spaces, tables and
command lines. Each either yields a valid study input, or an ``InputError`` of one line naming
the file or field; never another exception, never a hang, never a file written.

The number of examples is bounded for CI; ``TUNER_FUZZ_EXAMPLES=500`` searches longer.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tracemalloc
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuner.config import PARAMS
from tuner.data import NAN_POLICIES, DataOptions, load
from tuner.errors import InputError
from tuner.space import TOP_LEVEL, load_space

EXAMPLES = int(os.environ.get("TUNER_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(
    max_examples=EXAMPLES or 60,
    deadline=timedelta(seconds=10),  # a hang (an alias bomb took minutes) fails, not slowness
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=EXAMPLES is None,  # CI: the same examples every run; locally: new ones
)


def one_line(e: InputError, *names: str) -> None:
    message = str(e)
    assert "\n" not in message, message
    assert message.strip(), "an error says what is wrong"
    if names:
        assert any(n in message for n in names), message


# -- search spaces ----------------------------------------------------------------------------

WORDS = ["tpe", "random", "median", "hyperband", "adam", "auto", "forecast", "classify", "none"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(WORDS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
ranges = st.dictionaries(st.sampled_from(["low", "high", "log", "step", "lo"]), scalars, max_size=4)
param_values = st.one_of(scalars, st.lists(scalars, max_size=4), ranges)
named = st.one_of(
    st.sampled_from(WORDS),
    st.fixed_dictionaries({"name": st.sampled_from(WORDS)}, optional={"x": scalars}),
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "task": st.one_of(st.sampled_from(["forecast", "classify"]), scalars),
        "objective": st.one_of(st.sampled_from(["val_loss", "val_mae_original"]), scalars),
        "epochs": scalars,
        "patience": scalars,
        "seed": scalars,
        "sampler": st.one_of(named, values),
        "pruner": st.one_of(named, values),
        "params": st.one_of(
            st.dictionaries(st.sampled_from([*PARAMS, "unitz"]), param_values, max_size=6), values
        ),
        "start_with": st.one_of(
            st.lists(st.dictionaries(st.sampled_from(list(PARAMS)), scalars, max_size=3)), values
        ),
        "unknown": values,
    },
)


def bomb(width: int, depth: int) -> str:
    """``description`` holding nested aliases: ``width ** depth`` values once expanded."""
    levels = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    levels += [f"a{d}: &a{d} [{', '.join([f'*a{d - 1}'] * width)}]" for d in range(1, depth + 1)]
    return "description: {" + ", ".join(levels) + "}\n"


@st.composite
def space_texts(draw) -> str:
    doc = draw(documents)
    text = yaml.safe_dump(doc, sort_keys=False) if doc else ""
    mutation = draw(st.sampled_from(["none", "duplicate", "alias", "truncate", "tab"]))
    if mutation == "duplicate" and text:
        text += text.splitlines()[0] + "\n"  # the first top-level key again
    elif mutation == "alias":
        text = bomb(draw(st.integers(1, 9)), draw(st.integers(1, 9))) + text
    elif mutation == "truncate" and text:
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == "tab":
        text = "\t" + text
    assert all(k in TOP_LEVEL or k == "unknown" for k in doc)
    return text


@FUZZ
@given(text=space_texts())
def test_a_generated_space_loads_or_is_refused_in_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    before = sorted(tmp_path.rglob("*"))
    tracemalloc.start()
    try:
        space = load_space(path)
    except InputError as e:
        one_line(e)
        assert str(e).startswith(str(path)), str(e)
    else:  # valid: the spec stored on the study is plain JSON, and its numbers are finite
        json.dumps(space.raw, allow_nan=False)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"loading took {peak / 2**20:.0f} MiB"
    assert sorted(tmp_path.rglob("*")) == before


# -- tables and arrays ------------------------------------------------------------------------

cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-5, 5),
    st.sampled_from(["", "a", "1,5", "nan", "inf", "2020-01-01"]),
)


@st.composite
def tables(draw) -> pd.DataFrame:
    rows = draw(st.integers(0, 60))
    kind = draw(st.sampled_from(["numbers", "constant", "mixed", "gappy"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    y = rng.normal(size=rows).cumsum()
    if kind == "constant":
        y = np.full(rows, 3.0)
    frame = pd.DataFrame(
        {
            "t": draw(st.lists(st.integers(0, 10), min_size=rows, max_size=rows))
            if draw(st.booleans())
            else np.arange(rows),
            "y": y,
            "x": np.ones(rows) if kind == "constant" else rng.normal(size=rows),
        }
    )
    if kind in ("mixed", "gappy") and rows:
        for _ in range(draw(st.integers(1, 5))):
            r = draw(st.integers(0, rows - 1))
            c = draw(st.sampled_from(["y", "x", "t"]))
            frame[c] = frame[c].astype(object)
            frame.loc[r, c] = draw(cells) if kind == "mixed" else math.nan
    return frame


@FUZZ
@given(
    frame=tables(),
    time=st.sampled_from([None, "t"]),
    nan=st.sampled_from([*NAN_POLICIES, "zero"]),
    horizon=st.integers(-1, 3),
    window=st.integers(1, 8),
    parquet=st.booleans(),
)
def test_a_generated_table_loads_or_is_refused_in_one_line(
    tmp_path: Path,
    frame: pd.DataFrame,
    time: str | None,
    nan: str,
    horizon: int,
    window: int,
    parquet: bool,
) -> None:
    path = tmp_path / ("t.parquet" if parquet else "t.csv")
    try:
        frame.to_parquet(path) if parquet else frame.to_csv(path, index=False)
    except Exception:  # pyarrow refuses a column of mixed types: nothing to load
        return
    options = DataOptions(path=str(path), target=("y",), time=time, nan=nan, horizon=horizon)
    try:
        series = load(options, window)
    except InputError as e:
        one_line(e)
        return
    assert np.isfinite(series.values).all()
    for scaler in ("standard", "minmax", "robust"):  # constant columns scale to finite values
        arrays = series.arrays(scaler, window)
        assert np.isfinite(arrays.x_train).all() and np.isfinite(arrays.y_train).all(), scaler


@FUZZ
@given(
    samples=st.integers(0, 12),
    steps=st.integers(0, 6),
    features=st.integers(0, 3),
    classes=st.integers(1, 3),
    poison=st.sampled_from(["none", "nan", "inf", "labels", "y_short", "strings"]),
    nan=st.sampled_from(NAN_POLICIES),
)
def test_generated_sequences_load_or_are_refused_in_one_line(
    tmp_path: Path, samples, steps, features, classes, poison, nan
) -> None:
    rng = np.random.default_rng(samples * 100 + steps)
    x: np.ndarray = rng.normal(size=(samples, steps, features))
    y: np.ndarray = np.arange(samples) % classes
    if poison in ("nan", "inf") and x.size:
        x.flat[0] = math.nan if poison == "nan" else math.inf
    elif poison == "labels":
        y = y.astype(float) + 0.5
    elif poison == "y_short":
        y = y[:-1]
    elif poison == "strings":
        y = np.array([f"c{v}" for v in y])
    path = tmp_path / "s.npz"
    np.savez(path, X=x, y=y)
    try:
        seqs = load(DataOptions(path=str(path), task="classify", nan=nan), 1)
    except InputError as e:
        one_line(e)
        return
    assert np.isfinite(seqs.x).all() and len(seqs.x) == len(seqs.y)


# -- the command line -------------------------------------------------------------------------

GOOD_SPACE = "task: forecast\nepochs: 1\nparams: {layers: 1, units: 4, window: 4}\n"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    """Good and bad files for the command line, written once (the test checks nothing else is)."""
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    pd.DataFrame({"y": rng.normal(size=120).cumsum()}).to_csv(d / "good.csv", index=False)
    (d / "header.csv").write_text("y\n")
    (d / "text.csv").write_text("y\na\nb\n")
    (d / "good.yaml").write_text(GOOD_SPACE)
    (d / "nan.yaml").write_text("params: {dropout: {low: 0, high: 0.3, step: .nan}}\n")
    (d / "dup.yaml").write_text(GOOD_SPACE + "epochs: 3\n")
    (d / "afile").write_text("")
    return {p.name: str(p) for p in d.iterdir()} | {"dir": str(d), "missing": str(d / "no.csv")}


# Each bad input with the text that must name it. A command line gets one or more of them.
def bad_inputs(f: dict[str, str]) -> dict[str, tuple[list[str], str]]:
    return {
        "space-nan": (["space", f["nan.yaml"]], "nan.yaml"),
        "space-dup": (["space", f["dup.yaml"]], "dup.yaml"),
        "space-missing": (["space", f["missing"]], "no.csv"),
        "data-header": (["--data", f["header.csv"]], "header.csv"),
        "data-text": (["--data", f["text.csv"]], "text.csv"),
        "data-dir": (["--data", f["dir"]], "in"),
        "data-missing": (["--data", f["missing"]], "no.csv"),
        "trials": (["--trials", "-1"], "--trials"),
        "max-epochs": (["--max-epochs", "0"], "--max-epochs"),
        "budget": (["--budget-epochs", "-5"], "--budget-epochs"),
        "horizon": (["--horizon", "0"], "--horizon"),
        "season": (["--season", "1"], "--season"),
        "season-long": (["--season", "500"], "--season"),  # 120 rows: never twice in training
        "val-fraction": (["--val-fraction", "nan"], "--val-fraction"),
        "nan": (["--nan", "zero"], "--nan"),
        "study": (["--study", "no spaces!"], "--study"),
        "storage": (["--storage", "foo://x"], "--storage"),
        "tracking": (["--tracking-uri", f"file://{f['afile']}/mlruns"], "--tracking-uri"),
        "tracking-down": (["--tracking-uri", "http://127.0.0.1:9"], "--tracking-uri"),
        "storage-down": (["--storage", "postgresql://u:pw@127.0.0.1:9/x"], "--storage"),
        "target": (["--target", "nope"], "nope"),
        "trials-word": (["--trials", "abc"], "--trials: invalid int value: 'abc'"),
        "horizon-fraction": (["--horizon", "1.5"], "--horizon"),
        "unknown-option": (["--bogus", "1"], "--bogus 1 (see tuner "),
    }


@settings(FUZZ, max_examples=EXAMPLES or 25)
@given(data=st.data())
def test_a_command_line_with_a_bad_input_exits_2_in_one_line_writing_nothing(
    tmp_path: Path, inputs: dict[str, str], data: st.DataObject
) -> None:
    from tuner.cli import main

    bad = bad_inputs(inputs)
    chosen = data.draw(st.lists(st.sampled_from(sorted(bad)), min_size=1, max_size=3, unique=True))
    command = data.draw(st.sampled_from(["run", "create"]))
    argv = {"space": inputs["good.yaml"], "--data": inputs["good.csv"], "--target": "y"}
    for name in chosen:
        flag, value = bad[name][0]
        argv[flag] = value
    args = [command, argv.pop("space")] + [x for kv in argv.items() for x in kv] + ["-q"]
    before = sorted(p for p in tmp_path.rglob("*") if ".hypothesis" not in p.parts)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    lines = err.getvalue().strip().splitlines()
    assert code == 2, (args, err.getvalue())
    assert len(lines) == 1 and lines[0].startswith("tuner: error: "), (args, lines)
    assert any(bad[name][1] in lines[0] for name in chosen), (chosen, lines[0])
    assert sorted(p for p in tmp_path.rglob("*") if ".hypothesis" not in p.parts) == before


def test_a_season_that_does_not_fit_twice_in_training_is_refused(
    tmp_path: Path, inputs: dict[str, str], capsys
) -> None:
    from tuner.cli import main

    argv = ["run", inputs["good.yaml"], "--data", inputs["good.csv"], "--target", "y", "-q"]
    assert main([*argv, "--season", "500"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tuner: error: ") and "good.csv: --season: 500 rows" in err, err
    assert "at most 42" in err and "\n" not in err  # 120 rows: 84 train
    assert not (tmp_path / "home").exists()


def test_a_worker_on_a_machine_with_no_study_says_so_and_creates_no_store(tmp_path, capsys) -> None:
    from tuner.cli import main

    assert main(["worker", "--data", "x.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tuner: error: sqlite:///") and "no studies here yet" in err, err
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["worker", "--data", "x.csv", "--trials", "-1"], "--trials"),
        (["worker", "--data", "x.csv", "--timeout", "-5"], "--timeout"),
        (["worker", "--data", "x.csv", "--timeout", "nan"], "--timeout"),
        (["worker", "--data", "x.csv", "--trials-per-process", "-1"], "--trials-per-process"),
        (["retrain", "--data", "x.csv", "--top", "0"], "--top"),
        (["reproduce", "-3", "--data", "x.csv"], "TRIAL"),
        (["ui", "--port", "70000"], "--port"),
    ],
)
def test_numeric_options_out_of_range_exit_2_before_anything_runs(
    tmp_path: Path, argv: list[str], flag: str, capsys
) -> None:
    """``tuner worker --trials -1`` once ran nothing and exited 0."""
    from tuner.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tuner: error: {flag}: must be") and "\n" not in err, err
    assert not (tmp_path / "home").exists()


@settings(FUZZ, max_examples=EXAMPLES or 25)
@given(data=st.data())
def test_commands_on_a_store_with_no_study_exit_2_in_one_line_writing_nothing(
    tmp_path: Path, inputs: dict[str, str], data: st.DataObject, capfd
) -> None:
    """worker, predict, check, status, best, export and retrain on a fresh machine, with
    generated options: one line, exit 2, and no empty store created (`tuner worker` once left an
    empty optuna.db and blamed the storage)."""
    from tuner.cli import main

    command = data.draw(st.sampled_from(["worker", "predict", "check", "status", "best", "export"]))
    argv = [command]
    if command in ("worker", "predict"):
        argv += ["--data", data.draw(st.sampled_from([inputs["good.csv"], inputs["missing"]]))]
    if command in ("predict", "export"):  # into a folder that is not there: refused too
        folder = data.draw(st.sampled_from([tmp_path, tmp_path / "no" / "such"]))
        argv += ["-o", str(folder / "out.csv")]
    if data.draw(st.booleans()):
        argv += [
            "--study",
            data.draw(st.text(min_size=1, max_size=12).filter(lambda t: t[0] != "-")),
        ]
    if command == "worker":
        argv += ["--trials", str(data.draw(st.integers(-1, 3)))]
        argv += ["--timeout", data.draw(st.sampled_from(["-5", "nan", "30", "30"]))]
    if command == "check" and data.draw(st.booleans()):
        argv.append("--repair")
    store = data.draw(st.sampled_from(["home", "foo://x", f"sqlite:///{tmp_path}/no/optuna.db"]))
    if store != "home":
        argv += ["--storage", store]
    before = sorted(p for p in tmp_path.rglob("*") if ".hypothesis" not in p.parts)
    capfd.readouterr()
    code = main(argv)
    # the terminal's view: a worker's checks may run in its trial process (a child)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("tuner: error: "), (argv, lines)
    assert sorted(p for p in tmp_path.rglob("*") if ".hypothesis" not in p.parts) == before


def test_an_output_into_a_missing_folder_is_refused_in_one_line(tmp_path, capsys) -> None:
    """A new user's trial: `-o /no/such/dir/x.csv` ended in pandas' OSError traceback, after
    the work was done."""
    from tuner.cli import main

    for command in (["export"], ["predict", "--data", "x.csv"]):
        assert main([*command, "-o", str(tmp_path / "no" / "out.csv")]) == 2
        err = capsys.readouterr().err
        assert (
            err.strip() == f"tuner: error: {tmp_path}/no/out.csv: no such folder: {tmp_path}/no"
        ), err
