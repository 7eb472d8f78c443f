#!/bin/sh
# The MLflow tracking server with its basic-auth app on: every request needs a user. The admin
# comes from the environment (MLFLOW_ADMIN_USERNAME, MLFLOW_ADMIN_PASSWORD; .env or a Secret),
# written to the auth config that MLflow reads, readable by this user only. MLflow creates the
# admin on the first start; to change the password later, use the UI or
# /api/2.0/mlflow/users/update-password. Arguments are passed to `mlflow server`.
set -eu
: "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD (.env or a Secret)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (.env or a Secret)}"
if [ "$(printf '%s' "$MLFLOW_ADMIN_PASSWORD" | wc -l)" -ne 0 ]; then
    echo "tuner: MLFLOW_ADMIN_PASSWORD holds a line break" >&2
    exit 2
fi
# MLflow reads the file with configparser, where % starts an interpolation: write %%.
password=$(printf '%s' "$MLFLOW_ADMIN_PASSWORD" | sed 's/%/%%/g')
config=${MLFLOW_AUTH_CONFIG_PATH:-/auth/basic_auth.ini}
database=${MLFLOW_AUTH_DATABASE_URI:-sqlite:///$(dirname "$config")/basic_auth.db}
umask 077
cat > "$config" <<INI
[mlflow]
default_permission = READ
database_uri = $database
admin_username = ${MLFLOW_ADMIN_USERNAME:-admin}
admin_password = $password
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH=$config
exec mlflow server --app-name basic-auth "$@"
