# What `tuner submit` and a browser need. No secret is an output: read the Ray token and
# the MLflow admin's password from SSM with
#   aws ssm get-parameter --with-decryption --name <parameter> --query Parameter.Value --output text

locals {
  # With a certificate, clients use the TLS name; without, the SSM port forward on this
  # machine's loopback (the same ports the head's services listen on).
  ray_address = var.tls == null ? "http://127.0.0.1:${local.ray_ports.dashboard}" : "https://${var.tls.server_name}:${local.tls_ports.jobs_api}"
  mlflow_uri  = var.tls == null ? "http://127.0.0.1:${local.mlflow_port}" : "https://${var.tls.server_name}:${local.tls_ports.mlflow}"
  port_forward = {
    for name, port in { jobs_api = local.ray_ports.dashboard, mlflow = local.mlflow_port } :
    name => "aws ssm start-session --region ${var.region} --target ${aws_instance.head.id} --document-name AWS-StartPortForwardingSessionToRemoteHost --parameters '{\"host\":[\"127.0.0.1\"],\"portNumber\":[\"${port}\"],\"localPortNumber\":[\"${port}\"]}'"
  }
}

output "ray_dashboard_address" {
  description = "Ray dashboard and Jobs API (RAY_ADDRESS for tuner submit): https with a certificate, else the local end of the SSM port forward."
  value       = local.ray_address
}

output "mlflow_url" {
  description = "MLflow tracking server (MLFLOW_TRACKING_URI): https with a certificate, else the local end of the SSM port forward."
  value       = local.mlflow_uri
}

output "port_forward_commands" {
  description = "Run each in a terminal of its own to reach the Jobs API/dashboard (8265) and MLflow (5000) through SSM, with no port open; works with or without TLS."
  value       = local.port_forward
}

output "tls_urls" {
  description = "The Jobs API/dashboard and MLflow over TLS, from allowed_client_cidr (null without a certificate)."
  value = var.tls == null ? null : {
    jobs_api = local.ray_address
    mlflow   = local.mlflow_uri
  }
}

output "bucket" {
  description = "S3 bucket for checkpoints and MLflow artifacts."
  value       = aws_s3_bucket.sweeps.bucket
}

output "ray_token_parameter" {
  description = "SSM parameter holding the cluster's Ray auth token (SecureString)."
  value       = aws_ssm_parameter.ray_token.name
}

output "mlflow_admin_password_parameter" {
  description = "SSM parameter holding the MLflow admin's password (user admin; SecureString, written by the head at first boot)."
  value       = aws_ssm_parameter.mlflow_password["admin"].name
}

output "head_instance_id" {
  description = "Head instance, for SSM port forwarding."
  value       = aws_instance.head.id
}

output "env_file" {
  description = "Source this before tuner submit; then set your own MLflow login (an admin creates it)."
  value       = <<-EOT
    export RAY_ADDRESS=${local.ray_address}
    export MLFLOW_TRACKING_URI=${local.mlflow_uri}
    export TUNER_STORAGE=s3://${aws_s3_bucket.sweeps.bucket}/sweeps
    export RAY_AUTH_TOKEN="$(aws ssm get-parameter --region ${var.region} --with-decryption --name ${aws_ssm_parameter.ray_token.name} --query Parameter.Value --output text)"
    # Your MLflow account: export MLFLOW_TRACKING_USERNAME=you MLFLOW_TRACKING_PASSWORD=...
  EOT
}
