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

# MLflow's admin and the sweep drivers' service user. Terraform makes the parameters
# (so it owns their names, key and deletion) with a placeholder; the head writes the
# real passwords at first boot (infra/scripts/mlflow-credentials.py), so they never pass
# through Terraform's state, plan, user data or outputs. Only the head's role can read
# or write them: workers run trial code and never see an MLflow password.
locals {
  # infra/scripts/mlflow-credentials.py replaces exactly this value.
  first_boot_placeholder = "first-boot-sets-this"
  mlflow_passwords = {
    admin  = "MLflow admin (user admin): creates users and grants permissions"
    driver = "MLflow user tuner-driver: the sweep drivers on the head"
  }
}

resource "aws_ssm_parameter" "mlflow_password" {
  for_each = local.mlflow_passwords

  name        = "/${var.name}/mlflow-${each.key}-password"
  description = each.value
  type        = "SecureString"
  key_id      = aws_kms_key.cluster.arn
  value       = local.first_boot_placeholder

  lifecycle {
    # The head's first boot sets the real value; Terraform must not put the placeholder back.
    ignore_changes = [value]
  }
}
