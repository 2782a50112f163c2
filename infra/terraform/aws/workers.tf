# GPU workers on spot capacity: a launch template (no instance_market_options: AWS
# rejects it in a template used by a mixed-instances group) and an auto scaling group
# whose mixed instances policy buys spot across several GPU types, replaces instances
# that get a rebalance recommendation, and keeps no on-demand base.

resource "aws_launch_template" "worker" {
  name_prefix            = "${var.name}-gpu-worker-"
  image_id               = var.ami_id
  vpc_security_group_ids = [aws_security_group.cluster.id]
  ebs_optimized          = true

  iam_instance_profile {
    name = aws_iam_instance_profile.node["node"].name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only; the preemption watcher uses it
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      encrypted             = true
      kms_key_id            = aws_kms_key.cluster.arn
      volume_type           = "gp3"
      volume_size           = var.root_volume_gb
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  # Gzipped like the head's (cloud-init unpacks it), to stay far below 16 KiB.
  user_data = base64gzip(templatefile("${path.module}/templates/node-user-data.sh.tftpl", {
    role          = "worker"
    region        = var.region
    tuner_package = var.tuner_package
    token_param   = aws_ssm_parameter.ray_token.name
    bucket        = aws_s3_bucket.sweeps.bucket
    head_ip       = aws_instance.head.private_ip
    gpu_sharing   = var.gpu_sharing
    # The head's MLflow settings: workers never talk to MLflow.
    kms_key             = ""
    mlflow_admin_param  = ""
    mlflow_driver_param = ""
    mlflow_permission   = ""
    tls_cert_secret     = ""
    tls_key_secret      = ""
    tls_server_name     = ""
    bootstrap           = file("${path.module}/../../scripts/bootstrap-worker.sh")
    install_common      = file("${path.module}/../../scripts/install-common.sh")
    mlflow_credentials  = ""
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-gpu-worker", Role = "ray-worker" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "workers" {
  name                = "${var.name}-gpu-workers"
  min_size            = var.min_workers
  max_size            = var.max_workers
  desired_capacity    = var.min_workers
  vpc_zone_identifier = var.subnet_ids
  capacity_rebalance  = true
  # A worker's death is survivable (trials restart from S3 checkpoints); start clean.
  health_check_type = "EC2"

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = 0
      on_demand_percentage_above_base_capacity = 0 # spot only
      spot_allocation_strategy                 = var.spot_allocation_strategy
    }

    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.worker.id
        version            = aws_launch_template.worker.latest_version
      }

      dynamic "override" {
        for_each = var.worker_instance_types
        content {
          instance_type = override.value
        }
      }
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = "${var.name}-gpu-worker" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    # Scaling (by hand or by a policy) changes the desired count; Terraform keeps out.
    ignore_changes = [desired_capacity]
  }
}
