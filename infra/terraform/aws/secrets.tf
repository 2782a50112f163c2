# The cluster's Ray auth token (Ray 2.59+ token auth, kept on): generated here, stored
# encrypted in SSM Parameter Store, read by the nodes through their role and by users
# with `aws ssm get-parameter --with-decryption`. It is never an output or a log line.

resource "random_password" "ray_token" {
  length  = 48
  special = false
}

resource "aws_ssm_parameter" "ray_token" {
  name   = "/${var.name}/ray-auth-token"
  type   = "SecureString"
  key_id = aws_kms_key.cluster.arn
  value  = random_password.ray_token.result
}
