#!/usr/bin/env bash
# Start one `tuner worker` per visible GPU of this machine, all on one study.
#
#   scripts/launch_workers.sh --study NAME --storage URL --tracking-uri URI
#                             [--data PATH] [--dry-run] [other `tuner worker` options]
#
# GPUs: one worker per line `GPU i: ...` of `nvidia-smi -L`, run with `--gpu i`
# (tuner then sets CUDA_VISIBLE_DEVICES=i). If CUDA_VISIBLE_DEVICES is set, one
# worker per entry instead: `--gpu ID` for a number, CUDA_VISIBLE_DEVICES=ID in
# the worker's environment for a UUID or MIG id. No GPU: one CPU worker.
# --storage / --tracking-uri default to $TUNER_STORAGE / $MLFLOW_TRACKING_URI.
#
# Secrets: a password in the storage URL (user:pass@host or ?password=...) is
# removed from the URL and exported as PGPASSWORD (read by libpq/psycopg);
# user:pass@ in an http(s) tracking URI becomes MLFLOW_TRACKING_USERNAME/PASSWORD;
# in a postgresql one, the user stays and the password goes to PGPASSWORD too.
# No password ever appears in a worker's arguments.
#
# SIGTERM/SIGINT are forwarded to every worker as SIGTERM (background children
# of a script ignore SIGINT). Exits non-zero if any worker failed.
# --dry-run prints the commands (passwords masked as ***) instead.
# TUNER_BIN overrides the command that is run (default: tuner).
set -euo pipefail

die() { echo "launch_workers: $*" >&2; exit 2; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

# Percent-decode a URL component ($2=plus: '+' means space, as in a query).
urldecode() {
    local s=$1
    [[ ${2:-} == plus ]] && s=${s//+/ }
    s=${s//\\/\\\\}
    printf '%b' "${s//%/\\x}"
}

study="" data="" dry_run=0
storage=${TUNER_STORAGE:-}
tracking=${MLFLOW_TRACKING_URI:-}
extra=()
while (($#)); do
    case $1 in
        --study | --storage | --tracking-uri | --data)
            (($# >= 2)) || die "$1 needs a value"
            case $1 in
                --study) study=$2 ;;
                --storage) storage=$2 ;;
                --tracking-uri) tracking=$2 ;;
                --data) data=$2 ;;
            esac
            shift 2 ;;
        --study=*) study=${1#*=}; shift ;;
        --storage=*) storage=${1#*=}; shift ;;
        --tracking-uri=*) tracking=${1#*=}; shift ;;
        --data=*) data=${1#*=}; shift ;;
        --dry-run) dry_run=1; shift ;;
        --gpu | --gpu=*) die "--gpu is set per worker by this script" ;;
        -h | --help) usage; exit 0 ;;
        *) extra+=("$1"); shift ;;
    esac
done
[[ -n $study ]] || die "--study is required (see --help)"
[[ -n $storage ]] || die "--storage (or TUNER_STORAGE) is required"
[[ -n $tracking ]] || die "--tracking-uri (or MLFLOW_TRACKING_URI) is required"

secrets=()   # values masked in --dry-run output
# scheme://user:password@rest -> scheme://user@rest (same split as SQLAlchemy).
userinfo_re='^([A-Za-z][A-Za-z0-9+.-]*://)([^:/@]*):([^@]*)@(.*)$'
if [[ $storage =~ $userinfo_re ]]; then
    storage="${BASH_REMATCH[1]}${BASH_REMATCH[2]}@${BASH_REMATCH[4]}"
    PGPASSWORD=$(urldecode "${BASH_REMATCH[3]}")
    export PGPASSWORD
fi
# ...?password=x&... -> ...?... ; the query string is the part after the first '?'.
if [[ $storage == *\?* ]]; then
    base=${storage%%\?*} query=${storage#*\?} kept=()
    IFS='&' read -r -a params <<<"$query"
    for p in "${params[@]}"; do
        if [[ $p == password=* ]]; then
            PGPASSWORD=$(urldecode "${p#password=}" plus)
            export PGPASSWORD
        elif [[ -n $p ]]; then
            kept+=("$p")
        fi
    done
    storage=$base
    if ((${#kept[@]})); then storage+="?$(IFS='&'; echo "${kept[*]}")"; fi
fi
if [[ $tracking =~ $userinfo_re ]]; then
    case ${BASH_REMATCH[1],,} in
        http://* | https://*)  # a tracking server: MLflow's basic auth
            tracking="${BASH_REMATCH[1]}${BASH_REMATCH[4]}"
            MLFLOW_TRACKING_USERNAME=$(urldecode "${BASH_REMATCH[2]}")
            MLFLOW_TRACKING_PASSWORD=$(urldecode "${BASH_REMATCH[3]}")
            export MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD ;;
        postgres://* | postgresql://* | postgresql+*://*)  # MLflow on PostgreSQL: as --storage
            tracking="${BASH_REMATCH[1]}${BASH_REMATCH[2]}@${BASH_REMATCH[4]}"
            tracking_pw=$(urldecode "${BASH_REMATCH[3]}")
            if [[ -n ${PGPASSWORD:-} && $PGPASSWORD != "$tracking_pw" ]]; then
                die "the storage and tracking databases have different passwords; PGPASSWORD holds one: put both in a ~/.pgpass file instead"
            fi
            PGPASSWORD=$tracking_pw
            export PGPASSWORD ;;
        *) die "a password in a ${BASH_REMATCH[1]} tracking URI cannot be kept out of the workers' arguments: use an http(s) or postgresql URI" ;;
    esac
fi
case ${tracking,,} in
    http://* | https://*) ;;
    *\?*password=* | *\&password=*)
        die "a password in the tracking URI's query would reach the workers' arguments: use user:pass@ (moved to PGPASSWORD) or a ~/.pgpass file" ;;
esac
[[ -n ${PGPASSWORD:-} ]] && secrets+=("$PGPASSWORD")
[[ -n ${MLFLOW_TRACKING_PASSWORD:-} ]] && secrets+=("$MLFLOW_TRACKING_PASSWORD")

# Number the GPUs as nvidia-smi does (CUDA's default order is fastest first).
export CUDA_DEVICE_ORDER=${CUDA_DEVICE_ORDER:-PCI_BUS_ID}
# Number of GPUs this process may use.
n_gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
    n_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU [0-9]' || true)
fi
if [[ -n ${CUDA_VISIBLE_DEVICES+set} ]] && ((n_gpus > 0)); then
    case $CUDA_VISIBLE_DEVICES in
        "" | -1 | none | NoDevFiles) n_gpus=0 ;;
        *) IFS=',' read -r -a visible <<<"$CUDA_VISIBLE_DEVICES"; n_gpus=${#visible[@]} ;;
    esac
fi

tuner_bin=${TUNER_BIN:-tuner}
base_cmd=("$tuner_bin" worker --study "$study" --storage "$storage" --tracking-uri "$tracking")
[[ -n $data ]] && base_cmd+=(--data "$data")
base_cmd+=(${extra[@]+"${extra[@]}"})
n_fixed=$((${#base_cmd[@]} - ${#extra[@]}))  # the args before the user's extra ones

# One slot per worker: a GPU number (--gpu), "cvd:ID" (a UUID or MIG id, pinned
# through CUDA_VISIBLE_DEVICES as --gpu takes a number) or "" (CPU worker).
slots=()
if ((n_gpus == 0)); then
    echo "launch_workers: no GPU visible, starting one CPU worker" >&2
    slots=("")
elif [[ -n ${CUDA_VISIBLE_DEVICES+set} ]]; then
    for dev in "${visible[@]}"; do
        dev=${dev// /}
        if [[ $dev =~ ^[0-9]+$ ]]; then slots+=("$dev"); else slots+=("cvd:$dev"); fi
    done
else
    for ((i = 0; i < n_gpus; i++)); do slots+=("$i"); done
fi

# Sets cmd (and env_prefix, possibly empty) for the worker of slot $1.
worker_cmd() {
    cmd=("${base_cmd[@]}") env_prefix=()
    case $1 in
        "") ;;
        cvd:*) env_prefix=(env "CUDA_VISIBLE_DEVICES=${1#cvd:}") ;;
        *) cmd+=(--gpu "$1") ;;
    esac
}

if ((dry_run)); then
    env_note=""
    [[ -n ${PGPASSWORD:-} ]] && env_note+="PGPASSWORD=*** "
    [[ -n ${MLFLOW_TRACKING_PASSWORD:-} ]] && env_note+="MLFLOW_TRACKING_USERNAME=*** MLFLOW_TRACKING_PASSWORD=*** "
    for slot in "${slots[@]}"; do
        worker_cmd "$slot"
        # The URLs are clean now; a password could only be in the extra args.
        shown=("${cmd[@]}")
        for ((k = n_fixed; k < n_fixed + ${#extra[@]}; k++)); do
            for s in ${secrets[@]+"${secrets[@]}"}; do shown[k]=${shown[k]//"$s"/***}; done
        done
        line=$(printf '%q ' ${env_prefix[@]+"${env_prefix[@]:1}"} "${shown[@]}")
        echo "${env_note}${line% }"
    done
    exit 0
fi

pids=()
interrupted=0
stopping=""
# shellcheck disable=SC2317  # invoked by the traps below
forward() {
    interrupted=1
    stopping=$1
    echo "launch_workers: got SIG$1, stopping ${#pids[@]} worker(s)" >&2
    for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap 'forward TERM' TERM
trap 'forward INT' INT

for slot in "${slots[@]}"; do
    worker_cmd "$slot"
    ${env_prefix[@]+"${env_prefix[@]}"} "${cmd[@]}" &
    pids+=($!)
    where=${slot:+GPU ${slot#cvd:}}
    echo "launch_workers: worker pid $! on ${where:-CPU}" >&2
done
# A signal that came while the workers were starting reached only those started before it:
# a loaded machine can start a worker before its pid is in the list.
if [[ -n $stopping ]]; then forward "$stopping"; fi

failed=0
for pid in "${pids[@]}"; do
    while :; do
        interrupted=0
        rc=0
        wait "$pid" || rc=$?
        # `wait` also returns when a trapped signal arrives: wait again then.
        ((interrupted)) || break
    done
    if ((rc != 0)); then
        echo "launch_workers: worker pid $pid exited with status $rc" >&2
        failed=1
    fi
done
exit "$failed"
