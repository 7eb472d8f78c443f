#!/bin/sh
# Entrypoint of the tuner image: refuse the .env.example placeholders (and short secrets), then
# run the command. A store that anyone who reaches it can read, change or delete must not start
# with a password copied from the example file.
set -eu
for var in POSTGRES_PASSWORD PGPASSWORD MLFLOW_TRACKING_PASSWORD MLFLOW_ADMIN_PASSWORD \
    MLFLOW_FLASK_SERVER_SECRET_KEY; do
    eval "value=\${$var-}"
    [ -n "$value" ] || continue
    case $value in
        CHANGE_ME*)
            echo "tuner: $var is still the placeholder from .env.example: set a real one in .env" >&2
            exit 2 ;;
    esac
    if [ "${#value}" -lt 12 ]; then
        echo "tuner: $var is shorter than 12 characters: generate one, e.g." \
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'" >&2
        exit 2
    fi
done
exec "$@"
