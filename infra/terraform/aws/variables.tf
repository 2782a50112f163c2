# Inputs of the tuning cluster. Defaults give a small cluster: one on-demand head and
# 0-4 spot GPU workers that scale with the sweeps Ray schedules.

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix of every resource; also the Ray cluster's name."
  type        = string
  default     = "tuner"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: 2-31 lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC to run the cluster in (existing; tuner does not create networks)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Subnets (ideally one per availability zone) for the head and GPU workers; they need outbound internet (NAT) for packages and S3 (or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids: one or more ids like subnet-0123abcd."
  }
}

variable "allowed_client_cidr" {
  description = "Opt-in, and only with var.tls: the one network (your office or VPN range) allowed to reach the Jobs API/dashboard and MLflow over TLS (ports 8443 and 5443). Unset (the default), no client ingress rule exists and SSM port forwarding is the only way in. Never the whole internet."
  type        = string
  default     = null

  validation {
    condition     = var.allowed_client_cidr == null ? true : can(cidrhost(var.allowed_client_cidr, 0)) && !contains(["0.0.0.0/0", "::/0"], var.allowed_client_cidr)
    error_message = "allowed_client_cidr must be a CIDR block narrower than the whole internet."
  }

  validation {
    # Tokens and passwords must never cross a network in clear text.
    condition     = var.allowed_client_cidr == null || var.tls != null
    error_message = "allowed_client_cidr needs TLS: set tls (a certificate and key in Secrets Manager), or leave allowed_client_cidr unset and use SSM port forwarding."
  }
}

variable "tls" {
  description = "Certificate for the TLS terminator (nginx) on the head, which fronts the Jobs API/dashboard on 8443 and MLflow on 5443: Secrets Manager secrets holding the PEM certificate chain and the PEM private key (never the key itself: it would sit in plans and state), the DNS name the certificate is for (point it at the head's private IP), and the KMS key of the secrets if it is not the AWS managed one. Unset (the default), the Jobs API and MLflow listen on the head's loopback only."
  type = object({
    certificate_secret_arn = string
    private_key_secret_arn = string
    server_name            = string
    kms_key_arn            = optional(string)
  })
  default = null

  validation {
    condition     = var.tls == null ? true : alltrue([for arn in [var.tls.certificate_secret_arn, var.tls.private_key_secret_arn] : can(regex("^arn:aws[a-z-]*:secretsmanager:", arn))])
    error_message = "tls: certificate_secret_arn and private_key_secret_arn must be Secrets Manager secret ARNs."
  }

  validation {
    condition     = var.tls == null ? true : can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", var.tls.server_name))
    error_message = "tls.server_name: the DNS name the certificate is for, e.g. tuner.internal.example.com."
  }
}

variable "mlflow_default_permission" {
  description = "What every MLflow user may do with an experiment nobody granted them anything on: READ (the default: teammates see each other's sweeps; only the sweep drivers, the admin and those granted EDIT/MANAGE change them) or NO_PERMISSIONS (each experiment visible only to those granted it)."
  type        = string
  default     = "READ"

  validation {
    # EDIT or MANAGE by default would let any account change or delete every sweep.
    condition     = contains(["READ", "NO_PERMISSIONS"], var.mlflow_default_permission)
    error_message = "mlflow_default_permission: READ or NO_PERMISSIONS."
  }
}

variable "head_instance_type" {
  description = "On-demand instance type of the head node (Ray head, Jobs API, MLflow, PostgreSQL). It runs no trials."
  type        = string
  default     = "m6i.xlarge"
}

variable "worker_instance_types" {
  description = "GPU instance types the spot workers may use, most preferred first; several types make spot capacity easier to find."
  type        = list(string)
  default     = ["g5.xlarge", "g6.xlarge", "g4dn.xlarge"]

  validation {
    condition     = length(var.worker_instance_types) >= 2
    error_message = "worker_instance_types: list at least two types so spot capacity can be found."
  }
}

variable "min_workers" {
  description = "Fewest GPU workers kept running (0 lets the cluster idle for the price of the head)."
  type        = number
  default     = 0

  validation {
    condition     = var.min_workers >= 0
    error_message = "min_workers must be >= 0."
  }
}

variable "max_workers" {
  description = "Most GPU workers the auto scaling group may run."
  type        = number
  default     = 4

  validation {
    condition     = var.max_workers >= 1 && var.max_workers <= 100
    error_message = "max_workers must be between 1 and 100."
  }
}

variable "spot_allocation_strategy" {
  description = "How the auto scaling group picks spot pools."
  type        = string
  default     = "price-capacity-optimized"

  validation {
    condition     = contains(["price-capacity-optimized", "capacity-optimized", "capacity-optimized-prioritized", "lowest-price"], var.spot_allocation_strategy)
    error_message = "spot_allocation_strategy: price-capacity-optimized, capacity-optimized, capacity-optimized-prioritized or lowest-price."
  }
}

variable "gpu_sharing" {
  description = "How packed trials (resources_per_trial gpu: 0.25) share a GPU worker's GPU: mps (the default) runs NVIDIA's CUDA MPS control daemon before Ray on every worker with an NVIDIA GPU, in EXCLUSIVE_PROCESS compute mode, so their kernels run concurrently; none leaves the GPU in its default mode, where their CUDA contexts take turns (time-slicing). See infra/README.md, \"Sharing a GPU between trials\"."
  type        = string
  default     = "mps"

  validation {
    condition     = contains(["mps", "none"], var.gpu_sharing)
    error_message = "gpu_sharing: mps or none."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket for Ray Tune checkpoints and MLflow artifacts (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name: 3-63 lowercase letters, digits, dots and dashes."
  }
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept before it expires."
  type        = number
  default     = 30
}

variable "ami_id" {
  description = "AMI for all nodes: an Ubuntu 22.04 deep learning AMI with NVIDIA drivers (GPU workers need them), e.g. the AWS Deep Learning Base GPU AMI of your region."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id must look like ami-0123abcd."
  }
}

variable "tuner_package" {
  description = "pip requirement that installs tuner on every node (a version, or a git URL pinned to a commit)."
  type        = string
  default     = "tuner==0.1.0"
}

variable "root_volume_gb" {
  description = "Root volume size of every node, in GiB (CUDA images are large)."
  type        = number
  default     = 100
}

variable "tags" {
  description = "Extra tags for every resource (cost centre, owner...)."
  type        = map(string)
  default     = {}
}
