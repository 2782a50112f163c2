# The head node: on-demand (never spot: losing it loses the sweep drivers), running the
# Ray head with the Jobs API, an MLflow tracking server with MLflow's authentication app
# (local PostgreSQL backend and user store, S3 artifacts) and no trials (0 CPUs for Ray,
# so trials land on GPU workers). It has a role of its own (iam.tf).

resource "aws_instance" "head" {
  ami                         = var.ami_id
  instance_type               = var.head_instance_type
  subnet_id                   = var.subnet_ids[0]
  vpc_security_group_ids      = [aws_security_group.cluster.id, aws_security_group.clients.id]
  iam_instance_profile        = aws_iam_instance_profile.node["head"].name
  associate_public_ip_address = false
  monitoring                  = true
  ebs_optimized               = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted   = true
    kms_key_id  = aws_kms_key.cluster.arn
    volume_type = "gp3"
    volume_size = var.root_volume_gb
  }

  # Gzipped (cloud-init unpacks it): the scripts it carries outgrow EC2's 16 KiB limit.
  user_data_base64 = base64gzip(templatefile("${path.module}/templates/node-user-data.sh.tftpl", {
    role          = "head"
    region        = var.region
    tuner_package = var.tuner_package
    token_param   = aws_ssm_parameter.ray_token.name
    bucket        = aws_s3_bucket.sweeps.bucket
    head_ip       = ""
    gpu_sharing   = "none" # the head runs no trials
    kms_key       = aws_kms_key.cluster.arn
    # Parameter names only: the head makes and reads the passwords through its role.
    mlflow_admin_param  = aws_ssm_parameter.mlflow_password["admin"].name
    mlflow_driver_param = aws_ssm_parameter.mlflow_password["driver"].name
    mlflow_permission   = var.mlflow_default_permission
    tls_cert_secret     = try(var.tls.certificate_secret_arn, "")
    tls_key_secret      = try(var.tls.private_key_secret_arn, "")
    tls_server_name     = try(var.tls.server_name, "")
    bootstrap           = file("${path.module}/../../scripts/bootstrap-head.sh")
    install_common      = file("${path.module}/../../scripts/install-common.sh")
    mlflow_credentials  = file("${path.module}/../../scripts/mlflow-credentials.py")
  }))
  user_data_replace_on_change = true

  tags = {
    Name = "${var.name}-head"
    Role = "ray-head"
  }
}
