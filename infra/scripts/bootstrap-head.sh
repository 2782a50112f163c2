#!/bin/bash
# Head node: PostgreSQL (local socket only) behind an MLflow tracking server with S3
# artifacts and MLflow's authentication app, and the Ray head with the Jobs API. Ray gets
# 0 CPUs and 0 GPUs here, so trials run on the GPU workers and the sweep drivers keep the
# head to themselves. MLflow and the Jobs API listen on loopback only: clients come in
# through SSM port forwarding, or through the TLS terminator when a certificate is given.
set -euo pipefail
# shellcheck source=install-common.sh
. /opt/tuner/install-common.sh

: "${SWEEP_BUCKET:?SWEEP_BUCKET is not set}"
: "${MLFLOW_ADMIN_PARAMETER:?MLFLOW_ADMIN_PARAMETER is not set}"
: "${MLFLOW_DRIVER_PARAMETER:?MLFLOW_DRIVER_PARAMETER is not set}"
: "${MLFLOW_DEFAULT_PERMISSION:?MLFLOW_DEFAULT_PERMISSION is not set}"
: "${KMS_KEY_ID:?KMS_KEY_ID is not set}"
readonly MLFLOW_DIR=/etc/mlflow
readonly DRIVER_ENV=/etc/tuner/mlflow-driver.env
readonly PG_SOCKET=/var/run/postgresql

TUNER_EXTRA="mlflow[auth]" install_tuner
fetch_ray_token
ip=$(private_ip)
# Host headers MLflow answers: loopback (the drivers here, SSM port forwards on any local
# port) and, behind TLS, the certificate's name.
allowed_hosts="localhost:*,127.0.0.1:*"
if [[ -n "${TLS_SERVER_NAME:-}" ]]; then
  allowed_hosts+=",${TLS_SERVER_NAME}:*"
fi

apt-get install -y -q postgresql
id mlflow >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/mlflow mlflow
# Peer authentication over the local socket: no database password exists to leak. The
# user store (accounts, per-experiment permissions) has a database of its own beside the
# tracking data, in the same PostgreSQL.
sudo -u postgres psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'mlflow'" | grep -q 1 \
  || sudo -u postgres createuser mlflow
for db in mlflow mlflow_auth; do
  sudo -u postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
    || sudo -u postgres createdb --owner mlflow "$db"
done

# The admin's and the sweep drivers' passwords: made here at first boot, kept in SSM
# (SecureString), written only into files that root and one service group can read.
install -d -m 0750 -o root -g mlflow "$MLFLOW_DIR"
"$VENV/bin/python" /opt/tuner/mlflow-credentials.py files \
  --region "$AWS_REGION" --kms-key "$KMS_KEY_ID" \
  --admin-parameter "$MLFLOW_ADMIN_PARAMETER" --driver-parameter "$MLFLOW_DRIVER_PARAMETER" \
  --auth-database-uri "postgresql+psycopg://mlflow@/mlflow_auth?host=$PG_SOCKET" \
  --default-permission "$MLFLOW_DEFAULT_PERMISSION" \
  --out "$MLFLOW_DIR" --mlflow-group mlflow --driver-env "$DRIVER_ENV" --driver-group ray

# MLflow's Flask app under gunicorn: a request costs about a third less than under the
# default uvicorn (docs/performance.md). Threads, because a sync worker serves one request
# at a time; a 600 s timeout, because a model uploaded through the artifact proxy can take
# longer than gunicorn's 30 s. gunicorn's configuration from tuner (--config) writes a
# trial's three requests in under half of MLflow's CPU on PostgreSQL
# (tuner/cluster/mlflow_fast_writes.py). With --gunicorn-opts, mlflow server refuses --allowed-hosts
# on its command line but takes the same list from MLFLOW_SERVER_ALLOWED_HOSTS, which the
# Flask app's Host check reads. MLflow's job runner (8 processes that run its GenAI jobs:
# prompt optimization, online trace scorers) is off: no sweep uses it, and it took 1.9 GiB
# and 15 s of CPU at every start (docs/performance.md).
write_unit mlflow <<UNIT
[Unit]
Description=MLflow tracking server for tuner sweeps (basic-auth app, loopback only)
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
User=mlflow
Environment=AWS_REGION=${AWS_REGION}
Environment=MLFLOW_AUTH_CONFIG_PATH=${MLFLOW_DIR}/auth.ini
Environment=MLFLOW_SERVER_ALLOWED_HOSTS=${allowed_hosts}
Environment=MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
EnvironmentFile=${MLFLOW_DIR}/mlflow.env
ExecStart=${VENV}/bin/mlflow server --app-name basic-auth \
  --host 127.0.0.1 --port 5000 --workers 4 \
  --gunicorn-opts "--worker-class gthread --threads 4 --timeout 600 --config python:tuner.cluster.mlflow_gunicorn" \
  --backend-store-uri postgresql+psycopg://mlflow@/mlflow?host=${PG_SOCKET} \
  --artifacts-destination s3://${SWEEP_BUCKET}/mlflow
Restart=always

[Install]
WantedBy=multi-user.target
UNIT

# The sweep drivers (Ray jobs on this node) inherit the raylet's environment: their
# MLflow login comes from driver.env here, never through a job's runtime_env, which Ray
# copies into a world-readable log.
write_unit ray-head <<UNIT
[Unit]
Description=Ray head node (Jobs API on 127.0.0.1:8265, token auth on)
After=network-online.target mlflow.service
Wants=network-online.target

[Service]
User=ray
Environment=RAY_AUTH_MODE=token
Environment=RAY_AUTH_TOKEN_PATH=${TOKEN_FILE}
Environment=AWS_REGION=${AWS_REGION}
EnvironmentFile=${DRIVER_ENV}
ExecStart=${VENV}/bin/ray start --head --block --node-ip-address=${ip} \
  --port=6379 --dashboard-host=127.0.0.1 --dashboard-port=8265 \
  --ray-client-server-port=10001 --num-cpus=0 --num-gpus=0 ${RAY_PORT_FLAGS[*]}
ExecStop=${VENV}/bin/ray stop
Restart=always

[Install]
WantedBy=multi-user.target
UNIT

"$VENV/bin/python" /opt/tuner/mlflow-credentials.py driver-user \
  --uri http://127.0.0.1:5000 --out "$MLFLOW_DIR" --driver-env "$DRIVER_ENV"

# TLS in front of both (only with a certificate): nginx, from the distribution's
# packages, on the head's VPC address; the raw ports stay on loopback. The key is read
# from Secrets Manager through the head's role into a root-only file, never echoed.
if [[ -n "${TLS_SERVER_NAME:-}" ]]; then
  : "${TLS_CERT_SECRET:?TLS_CERT_SECRET is not set}" "${TLS_KEY_SECRET:?TLS_KEY_SECRET is not set}"
  apt-get install -y -q nginx
  install -d -m 0700 -o root -g root /etc/nginx/tuner
  (
    umask 077
    "$VENV/bin/python" - "$AWS_REGION" "$TLS_CERT_SECRET" "$TLS_KEY_SECRET" <<'PY'
import sys

import boto3

region, cert, key = sys.argv[1:]
client = boto3.client("secretsmanager", region_name=region)
for arn, path in ((cert, "/etc/nginx/tuner/cert.pem"), (key, "/etc/nginx/tuner/key.pem")):
    with open(path, "w") as out:
        out.write(client.get_secret_value(SecretId=arn)["SecretString"])
PY
  )
  rm -f /etc/nginx/sites-enabled/default
  # One server per port: 8443 -> the Jobs API/dashboard, 5443 -> MLflow. Websockets
  # (`tuner logs --follow`), large uploads (a job's working directory, MLflow artifacts)
  # and long reads pass through.
  {
    cat <<'NGINX'
map $http_upgrade $connection_upgrade {
  default upgrade;
  '' close;
}
NGINX
    for pair in 8443:8265 5443:5000; do
      cat <<NGINX
server {
  listen ${ip}:${pair%%:*} ssl;
  server_name ${TLS_SERVER_NAME};
  ssl_certificate /etc/nginx/tuner/cert.pem;
  ssl_certificate_key /etc/nginx/tuner/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  client_max_body_size 0;
  location / {
    proxy_pass http://127.0.0.1:${pair##*:};
    proxy_http_version 1.1;
    proxy_set_header Host \$http_host;
    proxy_set_header Upgrade \$http_upgrade;
    proxy_set_header Connection \$connection_upgrade;
    proxy_set_header X-Forwarded-Proto https;
    proxy_set_header X-Forwarded-For \$remote_addr;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_read_timeout 3600s;
  }
}
NGINX
    done
  } >/etc/nginx/conf.d/tuner.conf
  nginx -t
  systemctl enable nginx
  systemctl restart nginx
fi
