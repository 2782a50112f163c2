#!/bin/bash
# Shared by the head and worker bootstraps: tuner's virtual environment, the service
# user, the Ray token (read from SSM into a root-owned file, never echoed) and the
# instance's own address (IMDSv2).
set -euo pipefail

# The bootstraps that source this file use these names (shellcheck cannot see that).
# shellcheck disable=SC2034
readonly TUNER_HOME=/opt/tuner
readonly VENV="$TUNER_HOME/venv"
# shellcheck disable=SC2034
readonly TOKEN_FILE=/etc/tuner/ray-auth-token
# Fixed Ray ports: the security groups open exactly these between cluster members.
# shellcheck disable=SC2034
readonly RAY_PORT_FLAGS=(
  --node-manager-port=8076
  --object-manager-port=8077
  --runtime-env-agent-port=8078
  --dashboard-agent-listen-port=52365
  --metrics-export-port=8080
  --min-worker-port=10002
  --max-worker-port=10999
  --disable-usage-stats
)

# Where systemd units go (a test points it elsewhere).
readonly UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
# CUDA MPS: fixed directories of the control daemon's pipes and logs. Its clients (Ray's
# worker processes) find the daemon through the same CUDA_MPS_PIPE_DIRECTORY.
readonly MPS_PIPE_DIR=/run/nvidia-mps
readonly MPS_LOG_DIR=/var/log/nvidia-mps

# TUNER_EXTRA: one more requirement (the head's: mlflow[auth], MLflow's auth app).
install_tuner() {
  : "${TUNER_PACKAGE:?TUNER_PACKAGE is not set}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q python3-venv
  id ray >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/ray ray
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet "$TUNER_PACKAGE" "psycopg[binary]>=3.1" ${TUNER_EXTRA:+"$TUNER_EXTRA"}
}

fetch_ray_token() {
  : "${RAY_TOKEN_PARAMETER:?RAY_TOKEN_PARAMETER is not set}" "${AWS_REGION:?AWS_REGION is not set}"
  install -d -m 0750 -o root -g ray /etc/tuner
  (
    umask 027
    "$VENV/bin/python" - "$RAY_TOKEN_PARAMETER" "$AWS_REGION" >"$TOKEN_FILE" <<'PY'
import sys

import boto3

name, region = sys.argv[1], sys.argv[2]
parameter = boto3.client("ssm", region_name=region).get_parameter(Name=name, WithDecryption=True)
sys.stdout.write(parameter["Parameter"]["Value"])
PY
  )
  chgrp ray "$TOKEN_FILE"
}

# instance_metadata PATH: one IMDSv2 value, e.g. local-ipv4.
instance_metadata() {
  local token
  token=$(curl -sf -X PUT "http://169.254.169.254/latest/api/token" \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
  curl -sf -H "X-aws-ec2-metadata-token: $token" \
    "http://169.254.169.254/latest/meta-data/$1"
}

private_ip() {
  instance_metadata local-ipv4
}

# The Ray node labels tuner prices trials by (tuner/tracking/instance_prices.py): the
# instance type, and "spot" or "on-demand" from the instance's life cycle.
price_labels() {
  local type market
  type=$(instance_metadata instance-type)
  market=$(instance_metadata instance-life-cycle)
  [ "$market" = spot ] || market=on-demand
  # Ray's key=value form: no quotes for systemd's ExecStart to take apart.
  printf 'tuner.io/instance-type=%s,tuner.io/market=%s' "$type" "$market"
}

# share_gpu MODE USER: with MODE "mps" on a node with an NVIDIA GPU, run NVIDIA's MPS
# control daemon (as USER, the user of every CUDA process of the node's trials) as the
# service nvidia-mps; the caller gives Ray's unit its environment. Packed trials
# (resources_per_trial gpu: 0.25) then run their kernels side by side instead of
# time-slicing one CUDA context after another. Returns 1 where MPS stays off: MODE
# "none", no GPU, or no nvidia-cuda-mps-control.
share_gpu() {
  local mode=$1 user=$2 smi control
  case "$mode" in
    mps | none) ;;
    *)
      echo "gpu_sharing must be mps or none, not '$mode'" >&2
      exit 1
      ;;
  esac
  [ "$mode" = mps ] || return 1
  if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_sharing=mps: no NVIDIA GPU here (nvidia-smi -L failed); MPS stays off" >&2
    return 1
  fi
  smi=$(command -v nvidia-smi)
  if ! control=$(command -v nvidia-cuda-mps-control); then
    echo "gpu_sharing=mps: nvidia-cuda-mps-control not found; MPS stays off" >&2
    return 1
  fi
  # EXCLUSIVE_PROCESS, as NVIDIA's MPS documentation recommends: only one process (the
  # MPS server) may hold a context on the GPU, so every CUDA process goes through the
  # daemon. A process that misses it (no CUDA_MPS_PIPE_DIRECTORY, another user) fails at
  # once ("busy or unavailable") instead of silently time-slicing beside the MPS clients.
  # "+" runs it as root whatever User= says; it is set again at every start (the mode does
  # not survive a reboot), and stopping the daemon gives the GPU back in DEFAULT mode.
  # RuntimeDirectory and LogsDirectory make MPS_PIPE_DIR and MPS_LOG_DIR, owned by USER.
  write_unit nvidia-mps <<UNIT
[Unit]
Description=NVIDIA CUDA MPS control daemon (packed trials share the GPU)
Before=ray-worker.service

[Service]
Type=forking
User=${user}
RuntimeDirectory=${MPS_PIPE_DIR#/run/}
LogsDirectory=${MPS_LOG_DIR#/var/log/}
Environment=CUDA_MPS_PIPE_DIRECTORY=${MPS_PIPE_DIR}
Environment=CUDA_MPS_LOG_DIRECTORY=${MPS_LOG_DIR}
ExecStartPre=+${smi} -c EXCLUSIVE_PROCESS
ExecStart=${control} -d
ExecStop=/bin/sh -c 'echo quit | ${control}'
ExecStopPost=+${smi} -c DEFAULT
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
}

# write_unit NAME: the unit file comes on standard input.
write_unit() {
  cat >"$UNIT_DIR/$1.service"
  systemctl daemon-reload
  systemctl enable --now "$1.service"
}
