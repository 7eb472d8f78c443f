# tuner image: the `init` job, the GPU workers and the MLflow tracking server
# (one image, so the MLflow server and the clients are the same version).
#   docker build -t tuner:local .      (docker compose builds it for you)
FROM python:3.11-slim

# NVIDIA_DRIVER_CAPABILITIES: ask the NVIDIA runtime for CUDA and nvidia-smi.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    TF_FORCE_GPU_ALLOW_GROWTH=true

# Heavy dependencies first, in their own layer, so code changes do not
# reinstall them. tensorflow[and-cuda] brings the CUDA/cuDNN libraries as
# wheels (the driver comes from the host); mlflow[auth] adds basic-auth.
RUN pip install "tensorflow[and-cuda]>=2.16" "mlflow[auth]>=3.0" "psycopg[binary]>=3.1"

WORKDIR /opt/tuner
COPY pyproject.toml README.md ./
COPY tuner ./tuner
RUN pip install . && rm -rf build ./*.egg-info
# the shipped spaces, for `tuner create /opt/tuner/search_spaces/...` (deploy/k8s's init Job)
COPY search_spaces ./search_spaces

COPY scripts/launch_workers.sh docker/entrypoint.sh docker/mlflow-server.sh /usr/local/bin/
RUN chmod 0755 /usr/local/bin/launch_workers.sh /usr/local/bin/entrypoint.sh \
        /usr/local/bin/mlflow-server.sh \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin tuner \
    && mkdir -p /data /mlartifacts /auth \
    && chown tuner:tuner /mlartifacts /auth

USER tuner
WORKDIR /home/tuner
# Refuses .env.example's placeholder secrets, then runs tuner.
ENTRYPOINT ["entrypoint.sh", "tuner"]
CMD ["--help"]
