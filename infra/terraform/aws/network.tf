# Security groups. Ray's ports are open only between cluster members. The Jobs API /
# dashboard and MLflow listen on the head's loopback: by default no client rule exists at
# all and SSM port forwarding is the only way in. With a certificate (var.tls) and an
# allowed client CIDR, their TLS ports (nginx on the head) open to that CIDR only. No SSH
# at all: use SSM Session Manager (both roles carry AmazonSSMManagedInstanceCore).

resource "aws_security_group" "cluster" {
  name        = "${var.name}-cluster"
  description = "Ray cluster members: Ray ports between members only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "ray_between_members" {
  # The dashboard / Jobs API listens on the head's loopback: no member needs it.
  for_each = { for name, port in local.ray_ports : name => port if name != "dashboard" }

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

resource "aws_vpc_security_group_egress_rule" "cluster_out" {
  # checkov:skip=CKV_AWS_382: nodes install packages and reach S3, SSM and EC2 APIs; restrict with VPC endpoints and a proxy where the VPC has them
  security_group_id = aws_security_group.cluster.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "Outbound: package indexes, S3, SSM, EC2 metadata"
}

resource "aws_security_group" "clients" {
  name        = "${var.name}-clients"
  description = "TLS Jobs API, dashboard and MLflow from the allowed client CIDR only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "tls_from_clients" {
  # Nothing at all without both a certificate and a client CIDR.
  for_each = { for name, port in local.tls_ports : name => port if local.client_ingress }

  security_group_id = aws_security_group.clients.id
  cidr_ipv4         = var.allowed_client_cidr
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
  description       = "TLS to ${each.key} (nginx on the head) from clients"
}
