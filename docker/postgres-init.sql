-- Run once by the postgres image (docker-entrypoint-initdb.d), on an empty
-- data volume only, as POSTGRES_USER (superuser, so it owns both databases).
-- Optuna and MLflow get separate databases: both keep a table `alembic_version`.
-- Idempotent: \gexec runs CREATE DATABASE only when the database is missing.
SELECT 'CREATE DATABASE optuna' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'optuna')\gexec
SELECT 'CREATE DATABASE mlflow' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow')\gexec
