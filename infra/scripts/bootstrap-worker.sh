#!/bin/bash
# GPU worker on spot capacity: joins the head with `ray start`, and runs the preemption
# watcher, which polls IMDSv2 for a spot interruption notice and drains this Ray node
# with reason PREEMPTION, so its trials restart from their checkpoints elsewhere without
# counting as failures. With GPU_SHARING=mps (the default) on a node with an NVIDIA GPU,
# NVIDIA's MPS control daemon starts before Ray, and Ray's processes connect to it.
set -euo pipefail
# shellcheck source=install-common.sh
. /opt/tuner/install-common.sh

: "${HEAD_IP:?HEAD_IP is not set}"
install_tuner
fetch_ray_token
ip=$(private_ip)
labels=$(price_labels)

# Ray's worker processes inherit the raylet's environment: with the pipe directory, their
# CUDA contexts go through the daemon. Ray's unit requires the daemon, and starts after it.
if share_gpu "${GPU_SHARING:-mps}" ray; then
  install -d "$UNIT_DIR/ray-worker.service.d"
  cat >"$UNIT_DIR/ray-worker.service.d/mps.conf" <<UNIT
[Unit]
Requires=nvidia-mps.service
After=nvidia-mps.service

[Service]
Environment=CUDA_MPS_PIPE_DIRECTORY=${MPS_PIPE_DIR}
Environment=CUDA_MPS_LOG_DIRECTORY=${MPS_LOG_DIR}
UNIT
fi

write_unit ray-worker <<UNIT
[Unit]
Description=Ray GPU worker joining ${HEAD_IP}
After=network-online.target
Wants=network-online.target

[Service]
User=ray
Environment=RAY_AUTH_MODE=token
Environment=RAY_AUTH_TOKEN_PATH=${TOKEN_FILE}
Environment=AWS_REGION=${AWS_REGION}
ExecStart=${VENV}/bin/ray start --block --address=${HEAD_IP}:6379 \
  --node-ip-address=${ip} --labels=${labels} ${RAY_PORT_FLAGS[*]}
ExecStop=${VENV}/bin/ray stop
Restart=always

[Install]
WantedBy=multi-user.target
UNIT

write_unit tuner-preemption-watch <<UNIT
[Unit]
Description=Drain this Ray node when EC2 announces a spot interruption
After=ray-worker.service
Requires=ray-worker.service

[Service]
User=ray
Environment=RAY_AUTH_MODE=token
Environment=RAY_AUTH_TOKEN_PATH=${TOKEN_FILE}
ExecStart=${VENV}/bin/tuner preemption-watch --address ${HEAD_IP}:6379
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
