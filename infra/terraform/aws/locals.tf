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
}
