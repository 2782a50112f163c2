# What `tuner submit` and a browser need. The Ray token is not an output: read it with
#   aws ssm get-parameter --with-decryption --name <ray_token_parameter>

output "ray_dashboard_address" {
  description = "Ray dashboard and Jobs API (RAY_ADDRESS for tuner submit)."
  value       = "http://${aws_instance.head.private_ip}:${local.ray_ports.dashboard}"
}

output "mlflow_url" {
  description = "MLflow tracking server (MLFLOW_TRACKING_URI)."
  value       = "http://${aws_instance.head.private_ip}:${local.mlflow_port}"
}

output "bucket" {
  description = "S3 bucket for checkpoints and MLflow artifacts."
  value       = aws_s3_bucket.sweeps.bucket
}

output "ray_token_parameter" {
  description = "SSM parameter holding the cluster's Ray auth token (SecureString)."
  value       = aws_ssm_parameter.ray_token.name
}

output "head_instance_id" {
  description = "Head instance, for SSM port forwarding."
  value       = aws_instance.head.id
}

output "env_file" {
  description = "Source this (then export RAY_AUTH_TOKEN) before tuner submit."
  value       = <<-EOT
    export RAY_ADDRESS=http://${aws_instance.head.private_ip}:${local.ray_ports.dashboard}
    export MLFLOW_TRACKING_URI=http://${aws_instance.head.private_ip}:${local.mlflow_port}
    export TUNER_STORAGE=s3://${aws_s3_bucket.sweeps.bucket}/sweeps
    export RAY_AUTH_TOKEN="$(aws ssm get-parameter --region ${var.region} --with-decryption --name ${aws_ssm_parameter.ray_token.name} --query Parameter.Value --output text)"
  EOT
}
