# The sweep bucket: Ray Tune experiment state and checkpoints, MLflow artifacts.
# Versioned, KMS-encrypted, never public, TLS only; old versions expire.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "cluster" {
  description             = "${var.name}: sweep bucket and Ray token"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

# A stable name for the key: the Ray cluster file's head writes MLflow's passwords with it.
resource "aws_kms_alias" "cluster" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.cluster.key_id
}

data "aws_iam_policy_document" "kms" {
  # AWS's default key policy: in a key policy Resource "*" is this key alone, and the
  # account root administers it (IAM policies then grant use, as iam.tf does).
  # checkov:skip=CKV_AWS_111: key policy; "*" is the key itself, administered by the account
  # checkov:skip=CKV_AWS_356: key policy; "*" is the key itself, administered by the account
  # checkov:skip=CKV_AWS_109: key policy; "*" is the key itself, administered by the account
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_s3_bucket" "sweeps" {
  # checkov:skip=CKV_AWS_18: access logging needs a second bucket the user chooses; CloudTrail data events cover audits
  # checkov:skip=CKV_AWS_144: cross-region replication doubles cost; checkpoints are reproducible from the sweep
  # checkov:skip=CKV2_AWS_62: no consumer for event notifications
  bucket = var.bucket_name
}

resource "aws_s3_bucket_versioning" "sweeps" {
  bucket = aws_s3_bucket.sweeps.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "sweeps" {
  bucket = aws_s3_bucket.sweeps.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.cluster.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "sweeps" {
  bucket                  = aws_s3_bucket.sweeps.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.sweeps.arn, "${aws_s3_bucket.sweeps.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  bucket = aws_s3_bucket.sweeps.id
  policy = data.aws_iam_policy_document.tls_only.json
}

resource "aws_s3_bucket_lifecycle_configuration" "sweeps" {
  bucket = aws_s3_bucket.sweeps.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}
