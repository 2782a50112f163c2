# Terraform and provider pins: a plan made today means the same thing next month.
terraform {
  # 1.9: a variable's validation may name another variable (allowed_client_cidr needs tls).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "aws" {
  region = var.region

  # Every resource carries the project's tags, so cost reports and clean-up find it all.
  default_tags {
    tags = local.tags
  }
}
