"""infra/ checked offline: Terraform parses and is locked down, the Ray cluster file fits
Ray's schema, the boot scripts pass shellcheck. No terraform apply, no AWS account."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import jsonschema
import pytest
import ray.autoscaler
import yaml

from tests.conftest import REPO

INFRA = REPO / "infra"
TERRAFORM = INFRA / "terraform" / "aws"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))
SCRIPTS = sorted((INFRA / "scripts").glob("*.sh"))
WORLD = {"0.0.0.0/0", "::/0"}


def parse(path: Path) -> dict[str, Any]:
    options = hcl2.SerializationOptions(strip_string_quotes=True)
    return hcl2.loads(path.read_text(), serialization_options=options)


@pytest.fixture(scope="module")
def terraform() -> dict[str, list[dict[str, Any]]]:
    """Every block of every .tf file, by block type ("resource", "variable", ...)."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for path in TF_FILES:
        for kind, blocks in parse(path).items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def resources(terraform: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for block in terraform.get("resource", []):
        yield from block.get(kind, {}).items()


def all_resources(terraform: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for block in terraform.get("resource", []):
        for kind, named in block.items():
            for name, body in named.items():
                yield kind, name, body


def only(blocks: Any) -> dict[str, Any]:
    """python-hcl2 gives a nested block as a list of one dict."""
    return blocks[0] if isinstance(blocks, list) else blocks


def test_every_tf_file_parses_and_each_has_one_job() -> None:
    names = {p.name for p in TF_FILES}
    assert {"versions.tf", "variables.tf", "network.tf", "iam.tf", "storage.tf", "head.tf",
            "workers.tf", "outputs.tf"} <= names  # fmt: skip
    for path in TF_FILES:
        assert parse(path), path.name


def test_providers_are_pinned(terraform: dict[str, Any]) -> None:
    settings = only(terraform["terraform"])
    assert settings["required_version"].startswith(">=")
    providers = only(settings["required_providers"])
    assert providers["aws"]["version"].startswith("~>")


def test_every_variable_has_a_description_and_a_type(terraform: dict[str, Any]) -> None:
    variables = {name: body for block in terraform["variable"] for name, body in block.items()}
    assert {"region", "vpc_id", "subnet_ids", "allowed_client_cidr", "head_instance_type",
            "worker_instance_types", "min_workers", "max_workers", "spot_allocation_strategy",
            "bucket_name", "tags"} <= set(variables)  # fmt: skip
    for name, body in variables.items():
        assert body.get("description"), name
        assert body.get("type"), name
    assert "0.0.0.0/0" in str(variables["allowed_client_cidr"]["validation"])


def test_no_ingress_from_the_whole_internet_and_no_ssh(terraform: dict[str, Any]) -> None:
    ingress = list(resources(terraform, "aws_vpc_security_group_ingress_rule"))
    assert ingress
    for name, rule in ingress:
        assert rule.get("cidr_ipv4") not in WORLD and rule.get("cidr_ipv6") not in WORLD, name
        assert rule["from_port"] != 22, f"{name}: no SSH; use SSM Session Manager"
    # The API and MLflow are for the allowed client CIDR; Ray's ports for members only.
    for name, rule in ingress:
        if "cidr_ipv4" in rule:
            assert rule["cidr_ipv4"] == "${var.allowed_client_cidr}", name
            assert rule["from_port"] in ("${local.ray_ports.dashboard}", "${local.mlflow_port}")
        else:
            assert rule["referenced_security_group_id"] == "${aws_security_group.cluster.id}"
    for _, group in resources(terraform, "aws_security_group"):
        assert "ingress" not in group, "rules live in their own resources"


def test_imdsv2_required_and_volumes_encrypted_everywhere(terraform: dict[str, Any]) -> None:
    nodes = list(resources(terraform, "aws_instance")) + list(
        resources(terraform, "aws_launch_template")
    )
    assert len(nodes) == 2
    for name, node in nodes:
        assert only(node["metadata_options"])["http_tokens"] == "required", name
        volumes = (
            [only(node["root_block_device"])]
            if "root_block_device" in node
            else [only(m["ebs"]) for m in node["block_device_mappings"]]
        )
        assert all(v["encrypted"] is True for v in volumes), name


def test_head_is_on_demand_and_workers_are_spot_with_a_mixed_policy(
    terraform: dict[str, Any],
) -> None:
    [(_, head)] = resources(terraform, "aws_instance")
    assert "instance_market_options" not in head
    [(_, template)] = resources(terraform, "aws_launch_template")
    # AWS rejects instance_market_options in a template used by a mixed-instances group.
    assert "instance_market_options" not in template
    [(_, group)] = resources(terraform, "aws_autoscaling_group")
    assert group["capacity_rebalance"] is True
    policy = only(group["mixed_instances_policy"])
    distribution = only(policy["instances_distribution"])
    assert distribution["on_demand_base_capacity"] == 0
    assert distribution["on_demand_percentage_above_base_capacity"] == 0
    assert distribution["spot_allocation_strategy"] == "${var.spot_allocation_strategy}"
    overrides = only(only(policy["launch_template"])["dynamic"])["override"]
    assert overrides["for_each"] == "${var.worker_instance_types}"


def test_bucket_is_versioned_encrypted_private_tls_only_and_expires_old_versions(
    terraform: dict[str, Any],
) -> None:
    def one(kind: str) -> dict[str, Any]:
        [(_, body)] = resources(terraform, kind)
        return body

    assert only(one("aws_s3_bucket_versioning")["versioning_configuration"])["status"] == "Enabled"
    rule = only(one("aws_s3_bucket_server_side_encryption_configuration")["rule"])
    assert only(rule["apply_server_side_encryption_by_default"])["sse_algorithm"] == "aws:kms"
    block = one("aws_s3_bucket_public_access_block")
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls",
             "restrict_public_buckets")  # fmt: skip
    assert all(block[flag] is True for flag in flags)
    lifecycle = only(one("aws_s3_bucket_lifecycle_configuration")["rule"])
    assert "noncurrent_version_expiration" in lifecycle
    documents = {name: body for block in terraform["data"] for kind, named in block.items()
                 if kind == "aws_iam_policy_document" for name, body in named.items()}  # fmt: skip
    tls = only(documents["tls_only"]["statement"])
    assert tls["effect"] == "Deny"
    assert only(tls["condition"])["variable"] == "aws:SecureTransport"


def test_node_role_is_least_privilege_on_the_sweep_bucket(terraform: dict[str, Any]) -> None:
    documents = {name: body for block in terraform["data"] for kind, named in block.items()
                 if kind == "aws_iam_policy_document" for name, body in named.items()}  # fmt: skip
    for statement in documents["node"]["statement"]:
        assert "*" not in statement["actions"] and "s3:*" not in statement["actions"]
        for resource in statement["resources"]:
            assert resource != "*", statement.get("sid")
    [(_, attachment)] = resources(terraform, "aws_iam_role_policy_attachment")
    assert attachment["policy_arn"].endswith("AmazonSSMManagedInstanceCore")


def test_every_taggable_resource_is_tagged(terraform: dict[str, Any]) -> None:
    settings = only(only(terraform["provider"])["aws"])
    assert "tags" in only(settings["default_tags"]), "default_tags tag every resource"
    [(_, group)] = resources(terraform, "aws_autoscaling_group")
    # An ASG's tags reach its instances only through tag blocks with propagate_at_launch.
    assert only(only(group["dynamic"])["tag"])["content"]
    kinds = {kind for kind, _, _ in all_resources(terraform)}
    assert "aws_launch_template" in kinds


def test_outputs_give_what_tuner_submit_needs_and_no_secret(terraform: dict[str, Any]) -> None:
    outputs = {name: body for block in terraform["output"] for name, body in block.items()}
    assert {"ray_dashboard_address", "mlflow_url", "bucket", "env_file"} <= set(outputs)
    env = outputs["env_file"]["value"]
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "TUNER_STORAGE"):
        assert f"export {name}=" in env
    for name, body in outputs.items():
        assert "random_password" not in str(body["value"]), name


def test_terraform_fmt_is_clean() -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform binary not installed; parsing above still checks every file")
    out = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(INFRA / "terraform")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout


def test_ray_cluster_file_fits_rays_own_schema() -> None:
    config = yaml.safe_load((INFRA / "ray" / "aws-spot.yaml").read_text())
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert "InstanceMarketOptions" not in head["node_config"], "the head is on-demand"
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert len({w["node_config"]["InstanceType"] for w in workers}) >= 2
    for node in [head, *workers]:
        assert node["node_config"]["MetadataOptions"]["HttpTokens"] == "required"
        assert all(m["Ebs"]["Encrypted"] for m in node["node_config"]["BlockDeviceMappings"])
    for worker in workers:
        assert worker["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert config["provider"]["use_internal_ips"] is True


def render_user_data(role: str) -> str:
    """The user data Terraform renders, with sample values (templatefile's ${name})."""
    template = (TERRAFORM / "templates" / "node-user-data.sh.tftpl").read_text()
    values = {
        "role": role, "region": "us-east-1", "tuner_package": "tuner==0.1.0",
        "token_param": "/tuner/ray-auth-token", "bucket": "tuner-sweeps",
        "head_ip": "10.0.1.10" if role == "worker" else "",
        "bootstrap": (INFRA / "scripts" / f"bootstrap-{role}.sh").read_text(),
        "install_common": (INFRA / "scripts" / "install-common.sh").read_text(),
    }  # fmt: skip
    rendered = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)
    assert "${" not in re.sub(r"TUNER_SCRIPT.*?TUNER_SCRIPT", "", rendered, flags=re.S)
    return rendered


@pytest.mark.parametrize("target", [*SCRIPTS, "user-data:head", "user-data:worker"],
                         ids=lambda t: t if isinstance(t, str) else t.name)  # fmt: skip
def test_boot_scripts_pass_shellcheck(target: Path | str, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (.ci/run installs Debian's package)")
    if isinstance(target, str):
        path = tmp_path / "user-data.sh"
        path.write_text(render_user_data(target.split(":")[1]))
    else:
        path = target
    out = subprocess.run(
        ["shellcheck", "--external-sources", str(path)],
        cwd=INFRA / "scripts",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout


def test_no_secret_is_written_into_user_data() -> None:
    for role in ("head", "worker"):
        rendered = render_user_data(role)
        assert "RAY_AUTH_TOKEN=" not in rendered.replace("RAY_AUTH_TOKEN_PATH=", "")
        assert "get_parameter" in rendered, "the token is fetched at boot through the role"
