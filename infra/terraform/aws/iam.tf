# Two roles. Every node: the sweep bucket (and nothing else in S3), the cluster's Ray
# token, the KMS key that encrypts both, and SSM Session Manager instead of SSH. The head
# alone also: MLflow's passwords in SSM (it makes them at first boot) and the TLS
# certificate. Workers run trial code, so they get nothing they do not need.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role" "head" {
  name               = "${var.name}-head"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

data "aws_iam_policy_document" "node" {
  statement {
    sid       = "ListSweepBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.sweeps.arn]
  }
  statement {
    sid       = "ReadWriteSweepObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.sweeps.arn}/*"]
  }
  statement {
    sid       = "UseClusterKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.cluster.arn]
  }
  statement {
    sid       = "ReadRayToken"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.ray_token.arn]
  }
}

data "aws_iam_policy_document" "head" {
  statement {
    sid       = "MakeAndReadMlflowPasswords"
    actions   = ["ssm:GetParameter", "ssm:PutParameter"]
    resources = [for p in aws_ssm_parameter.mlflow_password : p.arn]
  }

  dynamic "statement" {
    for_each = var.tls == null ? [] : [var.tls]
    content {
      sid       = "ReadTlsCertificate"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value.certificate_secret_arn, statement.value.private_key_secret_arn]
    }
  }

  dynamic "statement" {
    for_each = try(var.tls.kms_key_arn, null) == null ? [] : [var.tls.kms_key_arn]
    content {
      sid       = "DecryptTlsCertificate"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

locals {
  roles = { node = aws_iam_role.node, head = aws_iam_role.head }
}

resource "aws_iam_role_policy" "node" {
  for_each = local.roles

  name   = "${var.name}-node"
  role   = each.value.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_role_policy" "head" {
  name   = "${var.name}-head"
  role   = aws_iam_role.head.id
  policy = data.aws_iam_policy_document.head.json
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  for_each = local.roles

  role       = each.value.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.roles

  name = "${var.name}-${each.key}"
  role = each.value.name
}

# A stack made before the head had a role of its own keeps its workers' role, policy
# and profile: these resources only gained for_each keys.
moved {
  from = aws_iam_role_policy.node
  to   = aws_iam_role_policy.node["node"]
}

moved {
  from = aws_iam_role_policy_attachment.ssm_core
  to   = aws_iam_role_policy_attachment.ssm_core["node"]
}

moved {
  from = aws_iam_instance_profile.node
  to   = aws_iam_instance_profile.node["node"]
}
