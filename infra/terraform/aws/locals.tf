locals {
  tags = merge(var.tags, { Project = "tuner", Cluster = var.name })

  # Fixed Ray ports, so security groups can name them instead of opening everything.
  ray_ports = {
    gcs             = 6379
    dashboard       = 8265
    client          = 10001
    node_manager    = 8076
    object_manager  = 8077
    runtime_env     = 8078
    dashboard_agent = 52365
    metrics_export  = 8080
  }
  ray_worker_ports = { from = 10002, to = 10999 }
  mlflow_port      = 5000

  # nginx on the head terminates TLS on these and proxies to the loopback ports above
  # (infra/scripts/bootstrap-head.sh uses the same numbers).
  tls_ports      = { jobs_api = 8443, mlflow = 5443 }
  client_ingress = var.tls != null && var.allowed_client_cidr != null
}
