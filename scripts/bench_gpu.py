"""B11 gpu: the GPU checks of issue 15 on the backend ``KERAS_BACKEND`` names (run it once per
backend: ``KERAS_BACKEND=jax`` and ``KERAS_BACKEND=torch``; no TensorFlow is needed). Needs only
tuner, Keras and Optuna: no MLflow, no database.

- the share of configurations drawn at random from each shipped space (``search_spaces/*.yaml``)
  that tuner calls cuDNN-eligible (``TrialConfig.cudnn_eligible``), and the share that Keras
  itself puts on its fused LSTM kernel on this backend: each kind of LSTM layer those draws give
  (the kernel's conditions, a mask, tuner's own step-loop choice) is built once, tiny, and called
  on the GPU with the path it takes recorded;
- the epoch time of one eligible forecast configuration (LSTM 2 x 128, window 48, batch 64, a
  synthetic series) against the same configuration made ineligible (``use_bias: false``);
- tuner's epoch time (``tuner.fitting.fit`` with a report callback: the trial's path without
  Optuna's storage or MLflow, which are not in this figure) against a plain Keras script that
  builds the same model and calls ``model.fit`` on the same windows (``bench_plain_keras.py``'s
  model, timed per epoch);
- the GPU memory one trial process holds with what ``tuner worker --gpu 0`` sets first
  (``tuner.device.setup_device``: the GPU pinned with ``CUDA_VISIBLE_DEVICES``, memory growth for
  TensorFlow, no preallocation for JAX; PyTorch's caching allocator grows by itself), and, on
  JAX, what a bare process holds without that setting.

An epoch's time is the interval between two epoch ends (everything of the epoch: its steps, the
validation pass, the callbacks), the median over the epochs after the first (which traces and
compiles). Each measurement runs in a fresh process of its own, one after the other. This file is
also that process (``bench_gpu.py child MODE ...``).

Which backends have a fused LSTM kernel, in Keras 3.15's own source (``keras/src/backend``):
``jax/rnn.py``'s ``lstm`` calls ``jax.experimental.rnn.lstm`` (cuDNN) when the layer is
eligible, no mask is given and JAX's default backend is the GPU, else raises
``NotImplementedError`` (Keras's step loop, ``lax.scan``); ``torch/rnn.py``'s ``lstm`` calls
``_cudnn_lstm`` (``torch._VF.lstm``, cuDNN) on CUDA tensors for an eligible unmasked layer, and
silently falls back to ``_fallback_lstm`` if that raises. Neither takes a masked sequence: a
text space's ``mask_padding: true`` and every seq2seq model (its embeddings mask the padding)
run the step loop there (TensorFlow's cuDNN path takes right-padded masks). The child records
the line of the fused call it finds in the installed Keras.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import ROOT, Figure, log, nice_env, niced, scratch

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"draws": 20, "rows": 1_500, "layers": 1, "units": 16, "epochs": 2, "limit": 300},
    "quick": {"draws": 50, "rows": 3_000, "layers": 2, "units": 32, "epochs": 3, "limit": 300},
    "full": {"draws": 200, "rows": 20_000, "layers": 2, "units": 128, "epochs": 4, "limit": 150},
}
WINDOW = 48
BATCH = 64
SPACES = ROOT / "search_spaces"
AUTO_WINDOW = (8, 64)  # `window: auto` without data: the range tuner takes with no season
INELIGIBLE = {"use_bias": False}  # one condition of the kernel broken, nothing else changed
TARGET_SHARE = 1.0  # every default configuration on the fused kernel
TARGET_PLAIN_OVER_TUNER = 0.97
TARGET_MEMORY_SHARE = 0.5  # memory grows: a trial holds what it uses, not the card (JAX: 75%)


# -- the parent: draws, child processes, figures ----------------------------------------------


def layer_kind(config: Any, task: str, backend: str) -> dict[str, Any]:
    """What decides an LSTM layer's kernel: the cuDNN conditions, whether the layer gets a mask
    (a text model masking its padding, every seq2seq model) and tuner's own choice of the step
    loop (``TrialConfig.step_loop_forced``)."""
    return {
        "activation": config.activation,
        "recurrent_activation": config.recurrent_activation,
        "recurrent_dropout": config.recurrent_dropout > 0,
        "use_bias": config.use_bias,
        "unroll": config.unroll,
        "step_loop_forced": config.step_loop_forced(backend),
        "masked": config.masked(task),
    }


def key(kind: dict[str, Any]) -> str:
    return json.dumps(kind, sort_keys=True)


def label(k: str) -> str:
    """A kind of layer in words: ``eligible, masked``, ``ineligible (use_bias=false)``..."""
    kind = json.loads(k)
    broken = [
        f"{name}={kind[name]}"
        for name, ok in (("activation", "tanh"), ("recurrent_activation", "sigmoid"))
        if kind[name] != ok
    ]
    broken += [f"{n}" for n in ("recurrent_dropout", "unroll") if kind[n]]
    broken += [] if kind["use_bias"] else ["use_bias=false"]
    words = "ineligible (" + ", ".join(broken) + ")" if broken else "eligible"
    words += ", masked" if kind["masked"] else ""
    return words + (", step loop forced by tuner" if kind["step_loop_forced"] else "")


def draw(draws: int, backend: str) -> dict[str, dict[str, Any]]:
    """Each shipped space's random draws: how many tuner calls eligible, and their layer kinds."""
    import optuna

    from tuner.sampling import sample
    from tuner.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    for path in sorted(SPACES.glob("*.yaml")):
        space = load_space(path)
        if space.window_auto:
            space = space.with_window(*AUTO_WINDOW)
        study = optuna.create_study(
            directions=list(space.directions),  # type: ignore[arg-type]
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        kinds: dict[str, int] = {}
        recorded: dict[str, bool] = {}  # what the trial's cudnn_eligible record says, per kind
        eligible = 0
        for i in range(draws):
            config = sample(study.ask(), space, seed=i)
            eligible += config.cudnn_eligible
            k = key(layer_kind(config, space.task, backend))
            kinds[k] = kinds.get(k, 0) + 1
            recorded[k] = config.fused_kernel(backend, space.task)
        out[path.name] = {
            "task": space.task,
            "draws": draws,
            "eligible": eligible,
            "kinds": kinds,
            "recorded": recorded,
        }
    return out


def child(mode: str, *args: str, backend: str, limit: float) -> dict[str, Any]:
    """Run ``bench_gpu.py child MODE ARGS`` on ``backend``; its last stdout line (JSON), or
    ``{"error": ...}``."""
    command = [sys.executable, str(Path(__file__).resolve()), "child", mode, *args]
    env = nice_env(KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    started = time.perf_counter()
    try:
        done = subprocess.run(
            niced(command), env=env, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired as e:
        raw = e.stderr or b""
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return {"error": f"timed out after {limit:.0f} s", "stderr_tail": text[-1500:]}
    took = round(time.perf_counter() - started, 1)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stdout + done.stderr)[-3000:]
        return {"error": f"exit {done.returncode}", "tail": tail, "process_seconds": took}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        return {"error": "no JSON on the last line", "tail": done.stdout[-2000:]}
    result["process_seconds"] = took
    return result


def series_csv(folder: Path, rows: int) -> Path:
    """A synthetic series: a daily-like season, a slow drift and noise in three columns."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    t = np.arange(rows)
    x1 = np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.2, rows)
    x2 = np.cos(2 * np.pi * t / 168) + 0.001 * t / 24 + rng.normal(0, 0.2, rows)
    y = 0.6 * np.roll(x1, 1) + 0.3 * x2 + rng.normal(0, 0.1, rows)
    path = folder / "series.csv"
    pd.DataFrame({"x1": x1, "x2": x2, "y": y}).to_csv(path, index=False)
    return path


def steady(result: dict[str, Any]) -> float | None:
    """The median epoch time after the first epoch (its only epoch if it ran one)."""
    times = result.get("epoch_periods") or []
    if not times:
        return None
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def bench(size: str) -> list[Figure]:
    from tuner.device import keras_backend

    s = SIZES[size]
    backend = keras_backend()
    tag = backend
    limit = float(s["limit"])
    figures: list[Figure] = []

    log(f"B11 [{tag}]: {s['draws']} random draws from each shipped space")
    spaces = draw(s["draws"], backend)
    n = sum(v["draws"] for v in spaces.values())
    eligible = sum(v["eligible"] for v in spaces.values())
    figures.append(
        Figure(
            "B11",
            f"shipped spaces' configs cuDNN-eligible (TrialConfig.cudnn_eligible), "
            f"{len(spaces)} spaces x {s['draws']} random draws",
            eligible / n,
            TARGET_SHARE,
            op=">=",
            details={name: round(v["eligible"] / v["draws"], 3) for name, v in spaces.items()},
        )
    )

    kinds = sorted({k for v in spaces.values() for k in v["kinds"]})
    log(f"B11 [{tag}]: the kernel Keras picks for each of {len(kinds)} kinds of LSTM layer")
    probed = child("kernels", json.dumps(kinds), backend=backend, limit=limit)
    shown = {**probed, "paths": {label(k): v for k, v in probed.get("paths", {}).items()}}
    log(f"B11 [{tag}]: kernels: {json.dumps(shown)}")
    gpu = bool(probed.get("gpu"))
    paths = probed.get("paths", {})
    per_space = {}
    fused = agree = 0
    for name, v in spaces.items():
        on = sum(c for k, c in v["kinds"].items() if paths.get(k) == "fused")
        fused += on
        per_space[name] = round(on / v["draws"], 3)
        agree += sum(
            c for k, c in v["kinds"].items() if (paths.get(k) == "fused") == v["recorded"][k]
        )
    kernel_details: dict[str, Any] = {
        "per_space": per_space,
        # the share of draws whose cudnn_eligible record (TrialConfig.fused_kernel) says what
        # Keras really did
        "record_agrees_with_keras": round(agree / n, 3) if gpu and "error" not in probed else None,
        "kinds": {label(k): paths.get(k, "not probed") for k in kinds},
        "keras": probed.get("keras"),
        "fused_call_in_keras": probed.get("fused_call"),
    }
    if not gpu:
        kernel_details["note"] = "no GPU visible: Keras has its fused kernel on a GPU only"
    if "error" in probed:
        kernel_details["error"] = probed
    figures.append(
        Figure(
            "B11",
            f"[{tag}] shipped spaces' configs on the fused LSTM kernel (Keras's own choice, "
            "probed per kind of layer on the GPU)",
            fused / n if gpu and "error" not in probed else None,
            TARGET_SHARE,
            op=">=",
            details=kernel_details,
        )
    )

    spec = {
        "layers": s["layers"],
        "units": s["units"],
        "window": WINDOW,
        "batch_size": BATCH,
        "epochs": s["epochs"],
    }
    shape = f"LSTM {s['layers']} x {s['units']}, window {WINDOW}, batch {BATCH}, {s['rows']:,} rows"
    runs: dict[str, dict[str, Any]] = {}
    with scratch("b11") as folder:
        csv = series_csv(folder, s["rows"])
        for name, mode, extra in (
            ("tuner, eligible", "tuner", {}),
            ("plain Keras, eligible", "plain", {}),
            ("tuner, ineligible", "tuner", INELIGIBLE),
        ):
            log(f"B11 [{tag}]: {name}: {shape}, {s['epochs']} epochs")
            runs[name] = child(
                "fit", str(csv), mode, json.dumps({**spec, **extra}), backend=backend, limit=limit
            )
            log(f"B11 [{tag}]: {name}: {json.dumps(runs[name])}")
        bare = None
        if backend == "jax" and runs["tuner, eligible"].get("gpu"):
            log(f"B11 [{tag}]: a bare JAX process without tuner's setting")
            bare = child("prealloc", backend=backend, limit=limit)
            log(f"B11 [{tag}]: bare: {json.dumps(bare)}")

    def brief(r: dict[str, Any]) -> dict[str, Any]:
        keep = ("epoch_periods", "epoch_seconds", "fit_seconds", "kernel_calls", "val_mae")
        out = {k: r[k] for k in keep if k in r}
        if "error" in r:
            out["error"] = r
        return out

    good, bad, plain = (
        runs["tuner, eligible"],
        runs["tuner, ineligible"],
        runs["plain Keras, eligible"],
    )
    t_good, t_bad, t_plain = steady(good), steady(bad), steady(plain)
    figures.append(
        Figure(
            "B11",
            f"[{tag}] epoch time, the same config made ineligible (use_bias false) / eligible; "
            f"{shape}",
            t_bad / t_good if t_good and t_bad else None,
            1.0,
            op=">=",
            unit="x",
            details={
                "eligible_s": t_good,
                "ineligible_s": t_bad,
                "gpu": bool(good.get("gpu")),
                "eligible": brief(good),
                "ineligible": brief(bad),
            },
        )
    )
    figures.append(
        Figure(
            "B11",
            f"[{tag}] epoch time, plain Keras script / tuner.fitting.fit (the trial's path "
            f"without Optuna's storage and MLflow, which are not in this figure); {shape}",
            t_plain / t_good if t_good and t_plain else None,
            TARGET_PLAIN_OVER_TUNER,
            op=">=",
            details={
                "tuner_s": t_good,
                "plain_s": t_plain,
                "tuner": brief(good),
                "plain": brief(plain),
            },
        )
    )

    memory = good.get("memory") or {}
    held = memory.get("process_mib") or memory.get("gpu_used_mib")
    total = memory.get("gpu_total_mib")
    mem_details: dict[str, Any] = {"trial_process": memory}
    if bare is not None:
        mem_details["bare_jax_process_without_setting"] = bare
    if not good.get("gpu"):
        mem_details["note"] = "no GPU visible"
    figures.append(
        Figure(
            "B11",
            f"[{tag}] GPU memory one trial process holds with `tuner worker --gpu 0`'s setting, "
            "share of the card",
            held / total if good.get("gpu") and held and total else None,
            TARGET_MEMORY_SHARE,
            op="<=",
            details=mem_details,
        )
    )
    return figures


# -- the child: one measurement in a fresh process ---------------------------------------------


class Probe:
    """Counts the LSTM layers' calls by the kernel they ran on, outside symbolic tracing (a
    functional model's build traces its layers on shapes alone: on PyTorch, on the meta
    device, never the fused kernel). On JAX the calls are traces (a jitted step traces once)."""

    def __init__(self, backend: str) -> None:
        import keras.src.backend as kb
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope
        from keras.src.layers.rnn.lstm import LSTM

        self.counts = {"fused": 0, "loop": 0, "fused_failed": 0}
        self.errors: list[str] = []
        hit = [False]
        backend_lstm = kb.lstm

        def lstm(*args: Any, **kwargs: Any) -> Any:
            out = backend_lstm(*args, **kwargs)  # raises NotImplementedError: the step loop
            if backend != "torch":  # torch returns its own fallback: _cudnn_lstm says
                hit[0] = True
            return out

        kb.lstm = lstm
        if backend == "torch":
            import importlib

            # the module: ``keras.src.backend.torch``'s attribute ``rnn`` is its function
            torch_rnn = importlib.import_module("keras.src.backend.torch.rnn")
            cudnn_lstm = getattr(torch_rnn, "_cudnn_lstm")  # noqa: B009

            def fused(*args: Any, **kwargs: Any) -> Any:
                try:
                    out = cudnn_lstm(*args, **kwargs)
                except Exception as e:
                    self.counts["fused_failed"] += 1
                    self.errors = [*self.errors[-2:], repr(e)[:300]]
                    raise
                hit[0] = True
                return out

            setattr(torch_rnn, "_cudnn_lstm", fused)  # noqa: B010
        inner_loop = LSTM.inner_loop

        def counted(layer: Any, *args: Any, **kwargs: Any) -> Any:
            hit[0] = False
            out = inner_loop(layer, *args, **kwargs)
            if not in_symbolic_scope():
                self.counts["fused" if hit[0] else "loop"] += 1
            return out

        LSTM.inner_loop = counted

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.counts, 0)

    def report(self) -> dict[str, Any]:
        return {**self.counts, **({"errors": self.errors} if self.errors else {})}


def fused_call(backend: str) -> str:
    """Where the installed Keras's backend ``lstm`` calls a fused kernel: file:line and code."""
    import inspect

    import keras.src.backend as kb

    lines, start = inspect.getsourcelines(kb.lstm)
    path = inspect.getsourcefile(kb.lstm) or "?"
    short = path[path.find("keras/src/") :] if "keras/src/" in path else path
    for i, line in enumerate(lines):
        if any(m in line for m in ("jax_lstm(", "_cudnn_lstm(", "cudnn_rnn", "CudnnRNN")):
            return f"{short}:{start + i}: {line.strip()}"
    return f"{short}:{start}: no fused call in {backend}'s lstm (it raises NotImplementedError)"


def has_gpu(backend: str) -> bool:
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return bool(torch.cuda.is_available())
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    return False


def nvidia_smi(*query: str) -> list[list[str]]:
    try:
        out = subprocess.run(
            ["nvidia-smi", *query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[c.strip() for c in line.split(",")] for line in out.strip().splitlines() if line]


def gpu_memory(backend: str) -> dict[str, Any]:
    """What this process holds on the GPU: nvidia-smi's per-process figure (else the card's
    used memory: one process runs at a time here), and the framework's own statistics."""
    out: dict[str, Any] = {
        "pid": os.getpid(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    for var in ("XLA_PYTHON_CLIENT_PREALLOCATE", "TF_FORCE_GPU_ALLOW_GROWTH"):
        out[var] = os.environ.get(var)
    mib = 2**20
    if backend == "jax":
        import jax

        devices = jax.devices()
        out["devices"] = [str(d) for d in devices]
        stats = devices[0].memory_stats() or {}
        for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit", "bytes_reserved"):
            if k in stats:
                out[f"jax_{k}_mib"] = round(stats[k] / mib, 1)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            out["devices"] = [
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            ]
            out["torch_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / mib, 1)
            out["torch_max_reserved_mib"] = round(torch.cuda.max_memory_reserved() / mib, 1)
            out["torch_reserved_mib"] = round(torch.cuda.memory_reserved() / mib, 1)
    apps = nvidia_smi("--query-compute-apps=pid,used_memory")
    out["nvidia_smi_apps"] = apps
    mine = [row for row in apps if row and row[0] == str(os.getpid())]
    if mine and mine[0][1].isdigit():
        out["process_mib"] = float(mine[0][1])
    cards = nvidia_smi("--query-gpu=name,memory.used,memory.total")
    if cards:
        out["gpu_name"] = cards[0][0]
        if cards[0][1].isdigit() and cards[0][2].isdigit():
            out["gpu_used_mib"], out["gpu_total_mib"] = float(cards[0][1]), float(cards[0][2])
    return out


def run_kernels(kinds: list[str], backend: str) -> dict[str, Any]:
    """Each kind of layer, tiny, called once in training mode: the kernel it ran on."""
    import keras
    import numpy as np

    where = fused_call(backend)
    probe = Probe(backend)
    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype("float32")
    lengths = np.array([6, 4, 5, 2])
    mask = keras.ops.convert_to_tensor(np.arange(6)[None, :] < lengths[:, None])
    paths = {}
    for k in kinds:
        kind = json.loads(k)
        layer = keras.layers.LSTM(
            8,
            activation=kind["activation"],
            recurrent_activation=kind["recurrent_activation"],
            recurrent_dropout=0.1 if kind["recurrent_dropout"] else 0.0,
            use_bias=kind["use_bias"],
            unroll=kind["unroll"],
            use_cudnn=False if kind["step_loop_forced"] else "auto",
            return_sequences=True,
        )
        probe.reset()
        try:
            layer(x, mask=mask if kind["masked"] else None, training=True)
            c = probe.counts
            paths[k] = "fused" if c["fused"] and not c["loop"] else "loop"
        except Exception as e:  # the fused kernel failing outright is a finding, not a crash
            paths[k] = f"error: {e!r}"[:300]
    versions = {"keras": keras.__version__}
    if backend == "jax":
        import jax

        versions |= {"jax": jax.__version__, "jax_backend": jax.default_backend()}
    elif backend == "torch":
        import torch

        versions |= {"torch": torch.__version__, "cudnn": torch.backends.cudnn.version()}
    return {
        "gpu": has_gpu(backend),
        "keras": versions,
        "fused_call": where,
        "paths": paths,
        "probe_errors": probe.errors,
    }


def run_fit(csv: str, mode: str, spec: dict[str, Any], backend: str) -> dict[str, Any]:
    """One training run: ``tuner`` (``tuner.fitting.fit`` with a report callback) or ``plain``
    (the plain script's model and ``model.fit`` on the same windows)."""
    from tuner.config import TrialConfig
    from tuner.data import DataOptions, Series, load
    from tuner.device import import_keras

    window, layers, units = spec["window"], spec["layers"], spec["units"]
    series = load(DataOptions(path=csv, target=("y",)), window)
    assert isinstance(series, Series)
    arrays = series.arrays("standard", window)  # cached: what the tuner run trains on too
    import_keras()
    import keras

    probe = Probe(backend)
    ends: list[float] = []
    out: dict[str, Any] = {"mode": mode, "spec": spec, "gpu": has_gpu(backend)}
    started = time.perf_counter()
    if mode == "tuner":
        from tuner.fitting import fit

        config = TrialConfig(
            layers=layers,
            units=(units,) * layers,
            window=window,
            batch_size=spec["batch_size"],
            epochs=spec["epochs"],
            use_bias=spec.get("use_bias", True),
            recurrent_dropout=spec.get("recurrent_dropout", 0.0),
            seed=0,
        )
        logs: list[dict[str, float]] = []

        def report(epoch: int, values: dict[str, float]) -> bool:
            ends.append(time.perf_counter())
            logs.append(values)
            return False

        done = fit(
            series, config, objective="val_mae_original", direction="minimize", report=report
        )
        out["cudnn_eligible"] = config.cudnn_eligible
        out["epoch_seconds"] = [round(v["epoch_seconds"], 4) for v in logs]
        out["val_mae"] = done.result.best_value
    else:
        import numpy as np

        keras.utils.set_random_seed(0)
        x, y = np.ascontiguousarray(arrays.x_train), np.ascontiguousarray(arrays.y_train)
        xv, yv = np.ascontiguousarray(arrays.x_val), np.ascontiguousarray(arrays.y_val)

        class EpochEnds(keras.callbacks.Callback):  # the benchmark's, not the user's
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                ends.append(time.perf_counter())

        inputs = h = keras.Input(x.shape[1:])
        for i in range(layers):
            h = keras.layers.LSTM(units, return_sequences=i < layers - 1)(h)
        model = keras.Model(inputs, keras.layers.Dense(y.shape[1])(h))
        model.compile(keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
        hist = model.fit(
            x,
            y,
            validation_data=(xv, yv),
            epochs=spec["epochs"],
            batch_size=spec["batch_size"],
            verbose=0,
            callbacks=[EpochEnds()],
        )
        out["val_mae"] = min(hist.history["val_mae"]) * float(series.output_scale(arrays)[0])
    out["fit_seconds"] = round(time.perf_counter() - started, 3)
    out["epoch_periods"] = [round(b - a, 4) for a, b in zip([started, *ends], ends, strict=False)]
    out["kernel_calls"] = probe.report()
    out["memory"] = gpu_memory(backend)
    return out


def run_prealloc(backend: str) -> dict[str, Any]:
    """A bare JAX process on the pinned GPU without ``XLA_PYTHON_CLIENT_PREALLOCATE=false``:
    what a second worker on the same GPU would find taken."""
    import jax.numpy as jnp

    jnp.ones(1).block_until_ready()
    return {"memory": gpu_memory(backend)}


def main_child(argv: list[str]) -> int:
    from tuner.device import keras_backend, setup_device

    mode, args = argv[0], argv[1:]
    setup_device(0)  # what `tuner worker --gpu 0` does before any framework is imported
    if mode == "prealloc":
        os.environ.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)  # JAX's default: preallocate
    backend = keras_backend()
    if mode == "kernels":
        result = run_kernels(json.loads(args[0]), backend)
    elif mode == "fit":
        result = run_fit(args[0], args[1], json.loads(args[2]), backend)
    elif mode == "prealloc":
        result = run_prealloc(backend)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["backend"] = backend
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:2] != ["child"]:
        sys.exit("run through scripts/bench.py gpu")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main_child(sys.argv[2:]))
