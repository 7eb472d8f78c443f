"""deploy/k8s: every manifest valid against the Kubernetes schemas (offline), no secret in the
repository, and the commands the pods run are the ones tuner's CLI (and its tests) run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def study_env() -> dict[str, str]:
    lines = (K8S / "study.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a container's command and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)


def container(name: str, kind: str) -> dict:
    [doc] = [d for d in documents(name) if d["kind"] == kind]
    return doc["spec"]["template"]["spec"]["containers"][0]


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    resources = kustomization()["resources"]
    assert sorted(resources) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.stem != "kustomization"
    )
    for name in resources:
        for doc in documents(name):
            kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises on an error


def test_secrets_come_from_a_gitignored_file_with_placeholders_only() -> None:
    generated = kustomization()["secretGenerator"][0]["envs"]
    assert generated == ["secrets.env"]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "deploy/k8s/secrets.env" in ignored and "deploy/k8s/study.env" in ignored
    example = (K8S / "secrets.env.example").read_text().splitlines()
    values = [line.split("=", 1)[1] for line in example if line and not line.startswith("#")]
    assert values and all(v.startswith("CHANGE_ME") for v in values)  # the image refuses these
    for path in K8S.glob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"postgresql\+psycopg://[^@\s]*:[^@\s]*@", text), path.name
        for image in re.findall(r"image:\s*(\S+)", text):
            assert "/" not in image, f"{path.name}: no registry host in the repo ({image})"


def test_the_postgres_init_sql_is_the_compose_file_s() -> None:
    [config] = [d for d in documents("postgres.yaml") if d["kind"] == "ConfigMap"]
    assert (
        config["data"]["postgres-init.sql"] == (ROOT / "docker" / "postgres-init.sql").read_text()
    )


def test_the_workers_are_an_indexed_job_one_gpu_each_stopping_within_their_grace() -> None:
    [job] = [d for d in documents("workers.yaml") if d["kind"] == "Job"]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == spec["completions"]
    worker = pod["containers"][0]
    limits = worker["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1 and "memory" in limits
    env = {e["name"]: e for e in worker["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "POSTGRES_PASSWORD"
    # the worker fails and re-queues its trial within ~10 s of SIGTERM (test_faults)
    assert pod["terminationGracePeriodSeconds"] >= 30
    from tuner.liveness import ALIVE_ENV

    probe = " ".join(worker["livenessProbe"]["exec"]["command"])
    assert ALIVE_ENV in env and f"${ALIVE_ENV}" in probe


def test_the_pods_run_tuner_s_own_commands() -> None:
    """The worker's arguments are the `tuner worker` the distributed tests start (study and data,
    the stores, one GPU); the init Job's are `tuner db init` and `tuner create`."""
    from tuner.cli import _parser, check_numbers

    env = {**study_env(), "POSTGRES_USER": "tuner"}
    worker = [expand(a, env) for a in container("workers.yaml", "Job")["args"]]
    a = _parser().parse_args(worker)
    check_numbers(a)
    assert a.command == "worker" and a.study == env["TUNER_STUDY"] and a.gpu == 0
    assert a.data == f"/data/{env['TUNER_DATA_FILE']}"
    assert a.storage == "postgresql+psycopg://tuner@postgres:5432/optuna"
    assert a.tracking_uri == "http://mlflow:5000"

    [deployment] = [d for d in documents("mlflow.yaml") if d["kind"] == "Deployment"]
    [schemas] = deployment["spec"]["template"]["spec"]["initContainers"]
    db = _parser().parse_args([expand(x, env) for x in schemas["args"]])
    assert (db.command, db.db_command) == ("db", "init"), "schemas before the server starts"

    [job] = documents("init-job.yaml")
    create = job["spec"]["template"]["spec"]["containers"][0]
    assert create["command"] == ["entrypoint.sh", "sh", "-c"]
    argv = shell_argv(create["args"][0], env)
    assert argv[0] == "tuner"
    b = _parser().parse_args(argv[1:])
    assert b.command == "create" and b.study == env["TUNER_STUDY"] and b.trials == 200
    assert (
        b.space == env["TUNER_SPACE"] and Path(ROOT, b.space.removeprefix("/opt/tuner/")).exists()
    )

    [job] = [d for d in documents("workers.yaml") if d["kind"] == "Job"]
    [wait] = job["spec"]["template"]["spec"]["initContainers"]
    argv = shell_argv(wait["args"][0], env)
    assert argv[0] == "tuner"
    status = _parser().parse_args(argv[1:])
    assert status.command == "status" and status.study == env["TUNER_STUDY"]
    assert status.storage == a.storage, "it waits for the study the workers join"


def shell_argv(line: str, env: dict[str, str]) -> list[str]:
    """The first command of a ``sh -c`` line (until ``;`` or a redirection), $VARs expanded."""
    line = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], line)
    words = shlex.split(line)
    words = words[1:] if words[0] == "until" else words
    end = next((i for i, w in enumerate(words) if w.startswith(">") or w.endswith(";")), None)
    out = words[:end]
    return out[1:] if out[0] == "exec" else out


@pytest.mark.parametrize("name", ["mlflow.yaml", "init-job.yaml", "workers.yaml"])
def test_tuner_containers_pass_the_image_s_secret_check(name: str) -> None:
    """Every tuner container starts through entrypoint.sh (the image's ENTRYPOINT, or named),
    which refuses the example's placeholder secrets."""
    for doc in documents(name):
        if doc["kind"] not in ("Job", "Deployment"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            assert c["image"] == "tuner"
            assert "command" not in c or c["command"][0] == "entrypoint.sh", c["name"]
