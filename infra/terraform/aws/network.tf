# Security groups. Ray's ports are open only between cluster members; the Jobs API /
# dashboard and MLflow only to the allowed client CIDR. No SSH at all: use SSM Session
# Manager (the instance role carries AmazonSSMManagedInstanceCore).

resource "aws_security_group" "cluster" {
  name        = "${var.name}-cluster"
  description = "Ray cluster members: Ray ports between members only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "ray_between_members" {
  for_each = local.ray_ports

  security_group_id            = aws_security_group.cluster.id
  referenced_security_group_id = aws_security_group.cluster.id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  description                  = "Ray ${each.key} port, cluster members only"
}

resource "aws_vpc_security_group_ingress_rule" "ray_workers_between_members" {
  security_group_id            = aws_security_group.cluster.id
  referenced_security_group_id = aws_security_group.cluster.id
  ip_protocol                  = "tcp"
  from_port                    = local.ray_worker_ports.from
  to_port                      = local.ray_worker_ports.to
  description                  = "Ray worker processes, cluster members only"
}

resource "aws_vpc_security_group_ingress_rule" "mlflow_between_members" {
  security_group_id            = aws_security_group.cluster.id
  referenced_security_group_id = aws_security_group.cluster.id
  ip_protocol                  = "tcp"
  from_port                    = local.mlflow_port
  to_port                      = local.mlflow_port
  description                  = "MLflow tracking server, for sweep drivers on the head"
}

resource "aws_vpc_security_group_egress_rule" "cluster_out" {
  # checkov:skip=CKV_AWS_382: nodes install packages and reach S3, SSM and EC2 APIs; restrict with VPC endpoints and a proxy where the VPC has them
  security_group_id = aws_security_group.cluster.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "Outbound: package indexes, S3, SSM, EC2 metadata"
}

resource "aws_security_group" "clients" {
  name        = "${var.name}-clients"
  description = "Jobs API, dashboard and MLflow from the allowed client CIDR only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "jobs_api_from_clients" {
  security_group_id = aws_security_group.clients.id
  cidr_ipv4         = var.allowed_client_cidr
  ip_protocol       = "tcp"
  from_port         = local.ray_ports.dashboard
  to_port           = local.ray_ports.dashboard
  description       = "Ray Jobs API and dashboard (token auth on) from clients"
}

resource "aws_vpc_security_group_ingress_rule" "mlflow_from_clients" {
  security_group_id = aws_security_group.clients.id
  cidr_ipv4         = var.allowed_client_cidr
  ip_protocol       = "tcp"
  from_port         = local.mlflow_port
  to_port           = local.mlflow_port
  description       = "MLflow UI and API from clients"
}
