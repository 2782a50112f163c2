#!/bin/bash
# Head node: PostgreSQL (local socket only) behind an MLflow tracking server with S3
# artifacts, and the Ray head with the Jobs API. Ray gets 0 CPUs and 0 GPUs here, so
# trials run on the GPU workers and the sweep drivers keep the head to themselves.
set -euo pipefail
# shellcheck source=install-common.sh
. /opt/tuner/install-common.sh

: "${SWEEP_BUCKET:?SWEEP_BUCKET is not set}"
install_tuner
fetch_ray_token
ip=$(private_ip)

apt-get install -y -q postgresql
id mlflow >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/mlflow mlflow
# Peer authentication over the local socket: no database password exists to leak.
sudo -u postgres psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'mlflow'" | grep -q 1 \
  || sudo -u postgres createuser mlflow
sudo -u postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1 \
  || sudo -u postgres createdb --owner mlflow mlflow

write_unit mlflow <<UNIT
[Unit]
Description=MLflow tracking server for tuner sweeps
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
User=mlflow
Environment=AWS_REGION=${AWS_REGION}
ExecStart=${VENV}/bin/mlflow server --host 0.0.0.0 --port 5000 --workers 4 \
  --backend-store-uri postgresql+psycopg://mlflow@/mlflow?host=/var/run/postgresql \
  --artifacts-destination s3://${SWEEP_BUCKET}/mlflow \
  --allowed-hosts ${ip}:5000,localhost:5000,127.0.0.1:5000
Restart=always

[Install]
WantedBy=multi-user.target
UNIT

write_unit ray-head <<UNIT
[Unit]
Description=Ray head node (Jobs API on 8265, token auth on)
After=network-online.target
Wants=network-online.target

[Service]
User=ray
Environment=RAY_AUTH_MODE=token
Environment=RAY_AUTH_TOKEN_PATH=${TOKEN_FILE}
Environment=AWS_REGION=${AWS_REGION}
ExecStart=${VENV}/bin/ray start --head --block --node-ip-address=${ip} \
  --port=6379 --dashboard-host=0.0.0.0 --dashboard-port=8265 \
  --ray-client-server-port=10001 --num-cpus=0 --num-gpus=0 ${RAY_PORT_FLAGS[*]}
ExecStop=${VENV}/bin/ray stop
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
