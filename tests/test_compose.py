"""Static checks of the container topology and a dry run of the GPU launcher.

Pure Python and fast: no Docker engine, no GPU. `docker-compose config` runs
only when the binary is installed (apt-get install docker-compose).
"""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
WORKERS = ROOT / "docker-compose.workers.yml"
COMPOSE_FILES = [COMPOSE, WORKERS]
LAUNCHER = ROOT / "scripts" / "launch_workers.sh"
ENV_EXAMPLE = ROOT / ".env.example"
INIT_SQL = ROOT / "docker" / "postgres-init.sql"

SECRET = "S3cr3t-Pa55"  # only ever used in the launcher tests
BASIC_ARGS = ["--study", "s", "--storage", "sqlite:///x.db", "--tracking-uri", "http://h"]
VAR = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(?:[:?-][^}]*)?\}$")  # a whole ${...} reference


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def services(path: Path) -> dict:
    return load(path)["services"]


def command_option(service: dict, option: str) -> str:
    """The value that follows `option` in a service's list-form command."""
    cmd = service["command"]
    return cmd[cmd.index(option) + 1]


def env_of(service: dict) -> dict:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form for environment"
    return env


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_published_ports_bind_loopback_only(path):
    for name, svc in services(path).items():
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (name, port)


def test_central_services_and_ports():
    svcs = services(COMPOSE)
    assert {"postgres", "mlflow", "init", "worker"} <= svcs.keys()
    assert svcs["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    assert svcs["mlflow"]["ports"] == ["127.0.0.1:5000:5000"]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_no_literal_secrets(path):
    # ${NAME:-default} -> NAME, so `user:${POSTGRES_PASSWORD}@` would still be caught.
    text = re.sub(r"\$\{([A-Za-z0-9_]+)[^}]*\}", r"\1", path.read_text())
    # No user:password@ in any URL (not even from a variable: it would be in argv).
    assert not re.search(r"://[^\s/@:]*:[^\s/@]+@", text)
    assert "password=" not in text.lower()
    for name, svc in services(path).items():
        for key, value in env_of(svc).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert VAR.match(str(value)), f"{name}.{key} must come from a ${{...}} variable"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_images_have_no_registry_host(path):
    for name, svc in services(path).items():
        image = svc.get("image", "")
        first = image.split("/")[0]
        assert "/" not in image or not re.search(r"[.:]|^localhost$", first), (name, image)


def test_postgres_password_from_env_file():
    pg = services(COMPOSE)["postgres"]
    assert pg["image"].startswith("postgres:")
    assert str(env_of(pg)["POSTGRES_PASSWORD"]).startswith("${POSTGRES_PASSWORD")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in pg["volumes"])
    assert any("/docker-entrypoint-initdb.d/" in v for v in pg["volumes"])


def test_postgres_leaves_room_for_64_workers():
    """PostgreSQL's default max_connections (100) runs out near 30 workers."""
    from tuner.storage import WORKER_CONNECTIONS

    setting = command_option(services(COMPOSE)["postgres"], "-c")
    name, _, value = setting.partition("=")
    assert name == "max_connections"
    default = int(re.fullmatch(r"\$\{POSTGRES_MAX_CONNECTIONS:-(\d+)\}", value).group(1))
    assert default >= 64 * WORKER_CONNECTIONS + 50  # and the MLflow server's pool


def test_env_example_has_placeholder_password():
    assert ENV_EXAMPLE.is_file()
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    assert "CHANGE_ME" in values["POSTGRES_PASSWORD"]


def test_env_is_gitignored_and_out_of_the_build_context():
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_worker_reserves_gpu_and_mounts_data_read_only(path):
    worker = services(path)["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "./data:/data:ro" in worker["volumes"]
    assert env_of(worker)["PGPASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_worker_ordering_and_shutdown():
    svcs = services(COMPOSE)
    worker = svcs["worker"]
    assert worker["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "mlflow" in worker["depends_on"]
    assert worker["stop_grace_period"] == "15s"
    assert svcs["init"]["restart"] == "no"
    assert svcs["init"]["command"][:2] == ["db", "init"]
    assert svcs["init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert svcs["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_optuna_and_mlflow_use_different_databases():
    svcs = services(COMPOSE)
    optuna = command_option(svcs["worker"], "--storage")
    assert optuna == command_option(svcs["init"], "--storage")
    mlflow = command_option(svcs["mlflow"], "--backend-store-uri")
    assert mlflow == command_option(svcs["init"], "--tracking-uri")
    db = {url.rsplit("/", 1)[1] for url in (optuna, mlflow)}
    assert db == {"optuna", "mlflow"}
    sql = INIT_SQL.read_text()
    assert "CREATE DATABASE optuna" in sql and "CREATE DATABASE mlflow" in sql
    workers_url = command_option(services(WORKERS)["worker"], "--storage")
    assert workers_url.endswith("/optuna")


# --- scripts/launch_workers.sh ---------------------------------------------


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH folder with a fake nvidia-smi that reports two GPUs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-000000000000)"\n'
        'echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-11111111-1111-1111-1111-111111111111)"\n'
    )
    smi.chmod(0o755)
    return bin_dir


def launcher_env(bin_dir: Path, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CUDA_VISIBLE_DEVICES", "PGPASSWORD", "TUNER_BIN"}
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run_launcher(args, env):
    return subprocess.run(
        ["bash", str(LAUNCHER), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_launcher_syntax():
    assert subprocess.run(["bash", "-n", str(LAUNCHER)]).returncode == 0


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://tuner:{SECRET}@db.example:5432/optuna",
        f"postgresql+psycopg://tuner@db.example:5432/optuna?password={SECRET}&sslmode=require",
    ],
)
def test_launcher_dry_run_one_worker_per_gpu_without_password(fake_bin, url):
    opts = ["--tracking-uri", "http://127.0.0.1:5000", "--data", "/data/x.csv", "--timeout", "60"]
    res = run_launcher(
        ["--dry-run", "--study", "s1", "--storage", url, *opts], launcher_env(fake_bin)
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if " worker " in ln]
    assert len(lines) == 2
    assert lines[0].endswith("--gpu 0") and lines[1].endswith("--gpu 1")
    for line in lines:
        assert "--study s1" in line and "--timeout 60" in line
        assert "tuner@db.example:5432/optuna" in line
        assert line.startswith("PGPASSWORD=*** ")
    assert SECRET not in res.stdout + res.stderr


def test_launcher_honours_cuda_visible_devices_and_cpu_fallback(fake_bin, tmp_path):
    base = ["--dry-run", *BASIC_ARGS]
    # tuner's --gpu I sets CUDA_VISIBLE_DEVICES=I, so a numeric entry is passed as is ...
    one = run_launcher(base, launcher_env(fake_bin, CUDA_VISIBLE_DEVICES="1"))
    assert one.returncode == 0 and one.stdout.splitlines() == [
        "tuner worker --study s --storage sqlite:///x.db --tracking-uri http://h --gpu 1"
    ]
    # ... and a UUID (not a number) pins the worker through its environment instead.
    uuid = run_launcher(base, launcher_env(fake_bin, CUDA_VISIBLE_DEVICES="GPU-1111,0"))
    first, second = uuid.stdout.splitlines()
    assert first.startswith("CUDA_VISIBLE_DEVICES=GPU-1111 tuner worker") and "--gpu" not in first
    assert second.endswith("--gpu 0")
    no_gpu = tmp_path / "nodriver"  # nvidia-smi failing as it does without a driver
    no_gpu.mkdir()
    (no_gpu / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2; exit 9\n")
    (no_gpu / "nvidia-smi").chmod(0o755)
    cpu = run_launcher(base, launcher_env(no_gpu))
    assert cpu.returncode == 0, cpu.stderr
    assert len(cpu.stdout.splitlines()) == 1 and "--gpu" not in cpu.stdout


def write_fake_tuner(bin_dir: Path, log_dir: Path) -> None:
    """A fake `tuner` that logs argv and PGPASSWORD, then waits for SIGTERM
    (or fails with status 3 when given --fail)."""
    tuner = bin_dir / "tuner"
    tuner.write_text(
        "#!/bin/bash\n"
        f'log="{log_dir}/worker.$$"\n'
        'printf "%s\\n" "$*" > "$log.args"; printf "%s" "$PGPASSWORD" > "$log.env"\n'
        'case " $* " in *" --fail "*) [[ " $* " == *" --gpu 1 "* ]] && exit 3; exit 0;; esac\n'
        "trap 'exit 0' TERM\n"
        'touch "$log.ready"\n'
        "while :; do sleep 0.1; done\n"
    )
    tuner.chmod(0o755)


def test_launcher_passes_password_by_env_and_reports_failure(fake_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_fake_tuner(fake_bin, logs)
    url = f"postgresql+psycopg://tuner:{SECRET}@db:5432/optuna"
    args = ["--study", "s", "--storage", url, "--tracking-uri", "http://h", "--fail"]
    res = run_launcher(args, launcher_env(fake_bin))
    assert res.returncode != 0  # the worker on GPU 1 exited with status 3
    args = [p.read_text() for p in logs.glob("*.args")]
    assert len(args) == 2 and all(SECRET not in a for a in args)
    assert {p.read_text() for p in logs.glob("*.env")} == {SECRET}


def test_launcher_keeps_the_user_of_a_postgresql_tracking_uri(fake_bin, tmp_path):
    """Issue 10: user:pass@ of a PostgreSQL tracking URI lost its user, and its password went
    where the database driver never reads it (MLFLOW_TRACKING_PASSWORD)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    write_fake_tuner(fake_bin, logs)
    storage = f"postgresql://tuner:{SECRET}@db:5432/optuna"
    tracking = f"postgresql://tuner:{SECRET}@db:5432/mlflow"
    args = ["--study", "s", "--storage", storage, "--tracking-uri", tracking, "--fail"]
    run_launcher(args, launcher_env(fake_bin))
    logged = [p.read_text() for p in logs.glob("*.args")]
    assert logged and all("--tracking-uri postgresql://tuner@db:5432/mlflow" in a for a in logged)
    assert all(SECRET not in a for a in logged)
    assert {p.read_text() for p in logs.glob("*.env")} == {SECRET}
    query = f"postgresql://tuner@db:5432/mlflow?password={SECRET}"
    res = run_launcher(
        ["--study", "s", "--storage", storage, "--tracking-uri", query], launcher_env(fake_bin)
    )
    assert res.returncode == 2 and "query would reach the workers' arguments" in res.stderr
    other = tracking.replace(SECRET, "another")
    res = run_launcher(
        ["--study", "s", "--storage", storage, "--tracking-uri", other], launcher_env(fake_bin)
    )
    assert res.returncode == 2 and "different passwords" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_launcher_forwards_signals(fake_bin, tmp_path, sig):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_fake_tuner(fake_bin, logs)
    proc = subprocess.Popen(
        ["bash", str(LAUNCHER), *BASIC_ARGS],
        env=launcher_env(fake_bin),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a shell cannot trap a signal ignored when it started: pytest run in the background
        # (`pytest &`) passes SIGINT ignored to its children; a terminal's launcher has it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 10
    while len(list(logs.glob("*.ready"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(logs.glob("*.ready"))) == 2
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out  # both workers stopped cleanly on SIGTERM


# --- docker-compose config (needs the binary, not an engine) ----------------


def compose_commands():
    cmds = []
    if shutil.which("docker-compose"):
        cmds.append(["docker-compose"])
    docker = shutil.which("docker")  # the v2 plugin, if installed
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        cmds.append([docker, "compose"])
    return cmds


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_config_validates(path):
    cmds = compose_commands()
    if not cmds:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    # .env.example stands in for .env; the real .env is never read or written.
    ours = ("POSTGRES_", "TUNER_", "MLFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    for cmd in cmds:
        res = subprocess.run(
            [*cmd, "--env-file", str(ENV_EXAMPLE), "-f", str(path), "config", "-q"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, (cmd, res.stderr)


# --- secrets: basic-auth on, placeholders refused ------------------------------

ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
MLFLOW_SERVER = ROOT / "docker" / "mlflow-server.sh"


def test_mlflow_runs_its_basic_auth_app_and_workers_sign_in():
    """Issue 10: the MLflow server was open to anyone who reached port 5000."""
    mlflow = services(COMPOSE)["mlflow"]
    assert mlflow["entrypoint"] == ["entrypoint.sh", "mlflow-server.sh"]
    assert "exec mlflow server --app-name basic-auth" in MLFLOW_SERVER.read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["entrypoint.sh", "tuner"]' in dockerfile
    env = env_of(mlflow)
    for key in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert str(env[key]).startswith(f"${{{key}:?"), f"{key} is required, no default"
    assert "/auth" in " ".join(mlflow["volumes"]), "the users' database outlives the container"
    for path in COMPOSE_FILES:
        worker = services(path)["worker"]
        # the image's own ENTRYPOINT (entrypoint.sh tuner) unless the service names another
        assert worker.get("entrypoint", ["entrypoint.sh"])[0] == "entrypoint.sh", path.name
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert str(env_of(worker)[key]).startswith(f"${{{key}:?"), (path.name, key)


def example_env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines())
    return {k: v for k, v in (p for p in pairs if len(p) == 2) if not k.startswith("#")}


@pytest.mark.parametrize(
    "var", ["POSTGRES_PASSWORD", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_TRACKING_PASSWORD"]
)
def test_the_image_refuses_the_example_s_placeholder_secrets(var):
    """Issue 10: `.env.example`'s placeholder password was accepted as it is."""
    placeholder = example_env()[var]
    assert placeholder.startswith("CHANGE_ME")
    env = {"PATH": os.environ["PATH"], var: placeholder}
    res = subprocess.run(
        ["sh", str(ENTRYPOINT), "echo", "started"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 2 and "started" not in res.stdout
    assert f"tuner: {var} is still the placeholder from .env.example" in res.stderr
    short = subprocess.run(
        ["sh", str(ENTRYPOINT), "true"], env={**env, var: "hunter2"}, capture_output=True, text=True
    )
    assert short.returncode == 2 and "shorter than 12 characters" in short.stderr
    good = subprocess.run(
        ["sh", str(ENTRYPOINT), "echo", "started"],
        env={**env, var: "a-real-long-secret"},
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0 and good.stdout.strip() == "started"


def test_the_mlflow_server_script_writes_a_private_auth_config(tmp_path, fake_bin):
    (fake_bin / "mlflow").write_text('#!/bin/sh\necho "$@"\ncat "$MLFLOW_AUTH_CONFIG_PATH"\n')
    (fake_bin / "mlflow").chmod(0o755)
    config = tmp_path / "auth.ini"
    env = {
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "MLFLOW_ADMIN_PASSWORD": "a-real-long-secret",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "another-long-secret",
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
    }
    res = subprocess.run(
        ["sh", str(MLFLOW_SERVER), "--port", "5000"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "server --app-name basic-auth --port 5000"
    assert (
        "admin_username = admin" in res.stdout
        and "admin_password = a-real-long-secret" in res.stdout
    )
    assert f"database_uri = sqlite:///{tmp_path}/basic_auth.db" in res.stdout
    assert config.stat().st_mode & 0o077 == 0, "readable by the server's user only"
    import configparser

    percent = {**env, "MLFLOW_ADMIN_PASSWORD": "50%-of-a-long-secret"}  # % is configparser's
    assert (
        subprocess.run(["sh", str(MLFLOW_SERVER)], env=percent, capture_output=True).returncode == 0
    )
    parsed = configparser.ConfigParser()
    parsed.read(config)
    assert parsed["mlflow"]["admin_password"] == "50%-of-a-long-secret"
    newline = {**env, "MLFLOW_ADMIN_PASSWORD": "a-long-secret\nadmin_username = x"}
    res = subprocess.run(["sh", str(MLFLOW_SERVER)], env=newline, capture_output=True, text=True)
    assert res.returncode == 2 and "line break" in res.stderr
    missing = {k: v for k, v in env.items() if k != "MLFLOW_ADMIN_PASSWORD"}
    res = subprocess.run(["sh", str(MLFLOW_SERVER)], env=missing, capture_output=True, text=True)
    assert res.returncode != 0 and "MLFLOW_ADMIN_PASSWORD" in res.stderr
