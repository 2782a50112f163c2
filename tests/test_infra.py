"""infra/ checked offline: Terraform parses and is locked down, the Ray cluster file fits
Ray's schema, the boot scripts pass shellcheck. No terraform apply, no AWS account."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import hcl2
import jsonschema
import pytest
import ray.autoscaler
import yaml

from bench.servers import HEAD_GUNICORN_OPTS, HEAD_MLFLOW_ENV
from tests.conftest import REPO

INFRA = REPO / "infra"
TERRAFORM = INFRA / "terraform" / "aws"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))
SCRIPTS = sorted((INFRA / "scripts").glob("*.sh"))
CREDENTIALS = INFRA / "scripts" / "mlflow-credentials.py"
WORLD = {"0.0.0.0/0", "::/0"}
# No call home to HashiCorp's version check: tests talk to nothing outside 127.0.0.0/8.
TERRAFORM_ENV = {**os.environ, "CHECKPOINT_DISABLE": "1"}


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
    block: dict[str, Any] = blocks[0] if isinstance(blocks, list) else blocks
    return block


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
    # Clients reach only the TLS ports, from the allowed CIDR; Ray's ports are for members.
    for name, rule in ingress:
        if "cidr_ipv4" in rule:
            assert rule["cidr_ipv4"] == "${var.allowed_client_cidr}", name
            assert rule["for_each"].endswith("if local.client_ingress}}"), name
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
    for statement in documents["node"]["statement"] + documents["head"]["statement"]:
        assert "*" not in statement["actions"] and "s3:*" not in statement["actions"]
        for resource in statement["resources"]:
            assert resource != "*", statement.get("sid")
    # The head's TLS statements exist only with a certificate, and name its two secrets.
    tls = [d["statement"] for d in documents["head"]["dynamic"]]
    assert tls[0]["for_each"] == "${var.tls == null ? [] : [var.tls]}"
    assert tls[0]["content"][0]["actions"] == ["secretsmanager:GetSecretValue"]
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
        env=TERRAFORM_ENV,
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
    head = role == "head"
    values = {
        "role": role, "region": "us-east-1", "tuner_package": "tuner==0.1.0",
        "token_param": "/tuner/ray-auth-token", "bucket": "tuner-sweeps",
        "head_ip": "10.0.1.10" if role == "worker" else "",
        "bootstrap": (INFRA / "scripts" / f"bootstrap-{role}.sh").read_text(),
        "install_common": (INFRA / "scripts" / "install-common.sh").read_text(),
        "kms_key": "arn:aws:kms:us-east-1:123456789012:key/k" if head else "",
        "mlflow_admin_param": "/tuner/mlflow-admin-password" if head else "",
        "mlflow_driver_param": "/tuner/mlflow-driver-password" if head else "",
        "mlflow_permission": "READ" if head else "",
        "mlflow_credentials": CREDENTIALS.read_text() if head else "",
        "tls_cert_secret": "", "tls_key_secret": "", "tls_server_name": "",
        "gpu_sharing": "none" if head else "mps",
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


def unit(script: str, name: str) -> str:
    """The systemd unit a boot script writes with `write_unit NAME <<UNIT ... UNIT`,
    its continuation lines joined as the unquoted heredoc joins them."""
    text = (INFRA / "scripts" / script).read_text()
    match = re.search(rf"write_unit {name} <<UNIT\n(.*?)\nUNIT\n", text, flags=re.S)
    assert match, f"{script} writes no {name} unit"
    return match.group(1).replace("\\\n", "")


def exec_start(unit_text: str) -> str:
    [line] = [line for line in unit_text.splitlines() if line.startswith("ExecStart=")]
    return line


class MlflowUnit(NamedTuple):
    """The head's mlflow unit, read so that a test runs the server the head runs."""

    environment: dict[str, str]  # its Environment= settings
    environment_files: list[str]  # its EnvironmentFile= paths: systemd reads them last
    options: dict[str, str]  # `mlflow server --name value ...` from its ExecStart=


def head_mlflow_unit(values: dict[str, str]) -> MlflowUnit:
    """bootstrap-head.sh's mlflow unit with `values` for the shell variables it names
    (others stay as written). ExecStart= is split with shlex: its double quotes group
    words as systemd's do; every option the head passes takes a value."""
    text = re.sub(
        r"\$\{(\w+)\}",
        lambda match: values.get(match.group(1), match.group(0)),
        unit("bootstrap-head.sh", "mlflow"),
    )
    settings = [line.partition("=")[::2] for line in text.splitlines()]
    argv = shlex.split(exec_start(text).removeprefix("ExecStart="))
    assert argv[0].endswith("/bin/mlflow") and argv[1] == "server", argv
    names, arguments = argv[2::2], argv[3::2]
    assert len(names) == len(arguments) and all(n.startswith("--") for n in names), argv
    return MlflowUnit(
        environment=dict(value.split("=", 1) for key, value in settings if key == "Environment"),
        environment_files=[value for key, value in settings if key == "EnvironmentFile"],
        options=dict(zip(names, arguments, strict=True)),
    )


def test_mlflow_runs_the_auth_app_with_its_users_in_postgresql() -> None:
    mlflow = unit("bootstrap-head.sh", "mlflow")
    command = exec_start(mlflow)
    assert "mlflow server --app-name basic-auth" in command
    assert "--backend-store-uri postgresql+psycopg://" in command
    assert "Environment=MLFLOW_AUTH_CONFIG_PATH=${MLFLOW_DIR}/auth.ini" in mlflow
    # The Flask secret comes from a root-owned file, never from the unit (world-readable).
    assert "EnvironmentFile=${MLFLOW_DIR}/mlflow.env" in mlflow
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in mlflow
    head = (INFRA / "scripts" / "bootstrap-head.sh").read_text()
    assert 'TUNER_EXTRA="mlflow[auth]" install_tuner' in head
    assert 'postgresql+psycopg://mlflow@/mlflow_auth?host=$PG_SOCKET"' in head
    # The sweep drivers (Ray jobs on the head) inherit their MLflow login from the
    # raylet's environment, not from a runtime_env (Ray logs those).
    assert "EnvironmentFile=${DRIVER_ENV}" in unit("bootstrap-head.sh", "ray-head")
    assert "mlflow-credentials.py driver-user" in head


def test_mlflow_runs_under_gunicorn_with_threads_and_a_long_timeout() -> None:
    """Gunicorn's sync workers serve one request each and kill one past 30 s; a model
    uploaded through MLflow's artifact proxy can take longer."""
    server = head_mlflow_unit({})
    gunicorn = shlex.split(server.options["--gunicorn-opts"])
    assert gunicorn[gunicorn.index("--worker-class") + 1] == "gthread"
    assert int(gunicorn[gunicorn.index("--threads") + 1]) > 1
    assert int(gunicorn[gunicorn.index("--timeout") + 1]) >= 600
    # The benchmarks' tracking server measures what the head runs.
    assert server.options["--gunicorn-opts"] == HEAD_GUNICORN_OPTS
    # mlflow server refuses --allowed-hosts beside --gunicorn-opts; it reads the variable.
    assert "--allowed-hosts" not in server.options
    assert server.environment["MLFLOW_SERVER_ALLOWED_HOSTS"] == "${allowed_hosts}"


def test_mlflow_runs_without_its_job_runner_on_the_head_and_in_the_benchmarks() -> None:
    """MLflow's job runner serves its GenAI jobs, none of which a sweep uses, with 8
    processes: off on the head (both ways of making one), and so in the benchmarks' and
    tests' servers, which run what the head runs."""
    assert HEAD_MLFLOW_ENV == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    assert HEAD_MLFLOW_ENV.items() <= head_mlflow_unit({}).environment.items()
    [command] = [
        line for line in yaml.safe_load((INFRA / "ray" / "aws-spot.yaml").read_text())[
            "head_setup_commands"
        ] if "mlflow server" in line
    ]  # fmt: skip
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup mlflow server" in command


def test_raw_ports_listen_on_loopback_only() -> None:
    assert "--host 127.0.0.1 --port 5000" in exec_start(unit("bootstrap-head.sh", "mlflow"))
    ray_head = exec_start(unit("bootstrap-head.sh", "ray-head"))
    assert "--dashboard-host=127.0.0.1 --dashboard-port=8265" in ray_head
    assert "0.0.0.0" not in (INFRA / "scripts" / "bootstrap-head.sh").read_text()


def test_mlflow_passwords_are_made_at_first_boot_into_ssm_only(
    terraform: dict[str, Any],
) -> None:
    credentials = load_credentials_module()
    parameters = dict(resources(terraform, "aws_ssm_parameter"))
    parameter = parameters["mlflow_password"]
    assert parameter["type"] == "SecureString"
    assert parameter["key_id"] == "${aws_kms_key.cluster.arn}"
    # Terraform holds a placeholder, never a password; the head replaces it at first boot.
    assert parameter["value"] == "${local.first_boot_placeholder}"
    placeholders = [b["first_boot_placeholder"] for b in terraform["locals"]
                    if "first_boot_placeholder" in b]  # fmt: skip
    assert placeholders == [credentials.PLACEHOLDER]
    assert only(parameter["lifecycle"])["ignore_changes"] == ["value"]
    passwords = [n for n, _ in resources(terraform, "random_password")]
    assert passwords == ["ray_token"], "MLflow's passwords never come from Terraform"
    # No password in outputs, variables' defaults, user data or the cluster file.
    outputs = {name: body for block in terraform["output"] for name, body in block.items()}
    for name, body in outputs.items():
        # A parameter's name may be an output, its value (or the whole resource) never.
        value = str(body["value"])
        uses = re.findall(r"aws_ssm_parameter\.mlflow_password(\[[^]]+\])?(\.\w+)?", value)
        assert all(attribute == ".name" for _, attribute in uses), name
    for block in terraform["variable"]:
        for name in block:
            assert "password" not in name, f"{name}: passwords are not inputs"
    # User data gets the parameters' names, never a value.
    [(_, head)] = resources(terraform, "aws_instance")
    [(_, template)] = resources(terraform, "aws_launch_template")
    for user_data in (head["user_data_base64"], template["user_data"]):
        assert "random_password" not in user_data
        uses = re.findall(r"aws_ssm_parameter\.mlflow_password(\[[^]]+\])?(\.\w+)?", user_data)
        assert all(attribute == ".name" for _, attribute in uses)
    assert "mlflow_password" not in template["user_data"], "workers never touch MLflow"
    cluster_file = (INFRA / "ray" / "aws-spot.yaml").read_text()
    assert not re.search(r"(?i)password\s*[=:]\s*[^\s$]", cluster_file)


def test_only_the_head_role_reaches_mlflow_passwords(terraform: dict[str, Any]) -> None:
    documents = {name: body for block in terraform["data"] for kind, named in block.items()
                 if kind == "aws_iam_policy_document" for name, body in named.items()}  # fmt: skip
    assert "mlflow" not in str(documents["node"]), "workers run trial code: no MLflow secret"
    head = documents["head"]["statement"]
    reaching = [s for s in head if "mlflow_password" in str(s["resources"])]
    assert reaching and all(a.startswith("ssm:") for s in reaching for a in s["actions"])
    [(_, head_node)] = resources(terraform, "aws_instance")
    assert head_node["iam_instance_profile"] == '${aws_iam_instance_profile.node["head"].name}'
    [(_, template)] = resources(terraform, "aws_launch_template")
    profile = only(template["iam_instance_profile"])["name"]
    assert profile == '${aws_iam_instance_profile.node["node"].name}'


def load_credentials_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlflow_credentials", CREDENTIALS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_credentials_helper_makes_passwords_once_and_keeps_them_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    import moto

    credentials = load_credentials_module()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    out, driver_env = tmp_path / "mlflow", tmp_path / "driver.env"
    argv = ["files", "--region", "us-east-1", "--admin-parameter", "/t/admin",
            "--driver-parameter", "/t/driver", "--out", str(out), "--driver-env",
            str(driver_env), "--auth-database-uri", "postgresql+psycopg://mlflow@/mlflow_auth",
            "--default-permission", "READ"]  # fmt: skip
    with moto.mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        for name in ("/t/admin", "/t/driver"):
            ssm.put_parameter(Name=name, Value=credentials.PLACEHOLDER, Type="SecureString")
        credentials.main(argv)
        admin, driver = (
            ssm.get_parameter(Name=n, WithDecryption=True)["Parameter"]["Value"]
            for n in ("/t/admin", "/t/driver")
        )
        first_key = credentials.read_env(out / "mlflow.env")["MLFLOW_FLASK_SERVER_SECRET_KEY"]
        credentials.main(argv)  # a second boot keeps every secret
        again = ssm.get_parameter(Name="/t/admin", WithDecryption=True)["Parameter"]["Value"]
    assert credentials.PLACEHOLDER not in (admin, driver) and admin != driver
    assert len(admin) >= 32 and again == admin
    assert credentials.read_env(out / "mlflow.env")["MLFLOW_FLASK_SERVER_SECRET_KEY"] == first_key
    ini = (out / "auth.ini").read_text()
    for line in ("default_permission = READ", "admin_username = admin",
                 "database_uri = postgresql+psycopg://mlflow@/mlflow_auth",
                 f"admin_password = {admin}"):  # fmt: skip
        assert line in ini
    assert credentials.read_env(driver_env) == {
        "MLFLOW_TRACKING_USERNAME": "tuner-driver",
        "MLFLOW_TRACKING_PASSWORD": driver,
    }
    for path in (out / "auth.ini", out / "mlflow.env", out / "admin.env", driver_env):
        assert path.stat().st_mode & 0o007 == 0, f"{path.name} is readable by everyone"
    printed = capsys.readouterr()
    assert admin not in printed.out + printed.err and driver not in printed.out + printed.err


@pytest.fixture
def head_databases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The tracking store and the user store as the head has them: two databases of one
    PostgreSQL; SQLite files where PostgreSQL cannot be started."""
    from bench.servers import new_database, postgres_missing, running_postgres

    if postgres_missing():
        yield f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'auth.db'}"
        return
    with running_postgres() as server:
        yield new_database(server, "mlflow"), new_database(server, "mlflow_auth")


@pytest.mark.server
def test_the_auth_app_starts_from_the_heads_files_and_lets_the_drivers_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head_databases: tuple[str, str]
) -> None:
    """What the head does at first boot, on loopback: the helper's files, a real
    `mlflow server` with the options and environment of the head's unit on them, the
    drivers' user made by the admin."""
    import sys
    import urllib.error
    import urllib.request

    import boto3
    import moto
    import psutil

    from bench.servers import free_port

    credentials = load_credentials_module()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    # driver-user logs in through these; monkeypatch takes them away again afterwards.
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, "")
    out, driver_env = tmp_path / "mlflow", tmp_path / "driver.env"
    with moto.mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        for name in ("/t/admin", "/t/driver"):
            ssm.put_parameter(Name=name, Value=credentials.PLACEHOLDER, Type="SecureString")
        credentials.main(["files", "--region", "us-east-1", "--admin-parameter", "/t/admin",
                          "--driver-parameter", "/t/driver", "--out", str(out),
                          "--driver-env", str(driver_env), "--auth-database-uri",
                          head_databases[1]])  # fmt: skip
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    head = head_mlflow_unit(
        {"MLFLOW_DIR": str(out), "allowed_hosts": allowed_hosts("tuner.example.com"),
         "AWS_REGION": "us-east-1"}
    )  # fmt: skip
    env = dict(head.environment)
    for path in head.environment_files:
        env.update(credentials.read_env(Path(path)))
    # The head's options but this test's loopback port, stores, and one worker on these
    # shared cores: the app, the server (gunicorn) and its worker class are the head's.
    options = {**head.options, "--host": "127.0.0.1", "--port": str(port), "--workers": "1",
               "--backend-store-uri": head_databases[0],
               "--artifacts-destination": str(tmp_path / "artifacts")}  # fmt: skip
    assert options.keys() == head.options.keys(), "the head's unit lacks an option replaced here"
    # gunicorn's control socket goes into this test's folder, not ~/.gunicorn, where it
    # would replace that of any other gunicorn of this user.
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", *(a for o in options.items() for a in o)],
        cwd=tmp_path, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        credentials.main(["driver-user", "--uri", uri, "--out", str(out),
                          "--driver-env", str(driver_env), "--wait-s", "120"])  # fmt: skip
        # A second run (a reboot of the head) sets the same password again, no error.
        credentials.main(["driver-user", "--uri", uri, "--out", str(out),
                          "--driver-env", str(driver_env)])  # fmt: skip
        driver = credentials.read_env(driver_env)

        def send(request: urllib.request.Request, user: str, password: str) -> tuple[int, Any]:
            """The status and JSON answer; no login where `user` is empty."""
            if user:
                token = base64.b64encode(f"{user}:{password}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as error:
                return error.code, None

        def call(
            user: str, password: str, path: str, body: Any = None, host: str | None = None
        ) -> tuple[int, Any]:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(f"{uri}/api/2.0/mlflow/{path}", data=data)
            request.add_header("Content-Type", "application/json")
            if host:  # urllib sends this one instead of its own
                request.add_header("Host", host)
            return send(request, user, password)

        # The head's server is MLflow and gunicorn (master, one worker here): no job runner.
        commands = [" ".join(child.cmdline()) for child in psutil.Process(server.pid).children()]
        assert len(commands) == 1 and "gunicorn" in commands[0], commands
        as_driver = ("tuner-driver", driver["MLFLOW_TRACKING_PASSWORD"])
        admin = credentials.read_env(out / "admin.env")
        as_admin = (admin["MLFLOW_TRACKING_USERNAME"], admin["MLFLOW_TRACKING_PASSWORD"])
        search = "experiments/search?max_results=1"
        assert call(*as_driver, search)[0] == 200
        assert call(*as_admin, search)[0] == 200
        assert call("", "", search)[0] == 401
        assert call("tuner-driver", "wrong", search)[0] == 401
        assert call("admin", "password1234", search)[0] == 401
        # The head's allowed hosts: another Host header is refused whoever logs in.
        assert call(*as_driver, search, host="mlflow.attacker.example")[0] == 403
        assert call(*as_driver, search, host=f"tuner.example.com:{port}")[0] == 200
        assert call(*as_driver, search, host=f"localhost:{port}")[0] == 200
        # The documented permissions: the driver creates a sweep's experiment (MANAGE);
        # another user reads it (default READ) but edits only once the admin grants EDIT,
        # the way infra/README.md shows.
        code, made = call(*as_driver, "experiments/create", {"name": "sweep"})
        assert code == 200
        experiment = made["experiment_id"]
        # A file through the artifact proxy (Flask's handler under gunicorn, not FastAPI's):
        # the driver may, nobody without a login.
        code, made = call(*as_driver, "runs/create", {"experiment_id": experiment})
        assert code == 200
        run = made["run"]["info"]["run_id"]
        artifact = f"{uri}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/m.bin"
        payload = os.urandom(1 << 20)
        upload = urllib.request.Request(artifact, data=payload, method="PUT")
        assert send(upload, "", "")[0] == 401
        upload = urllib.request.Request(artifact, data=payload, method="PUT")
        assert send(upload, *as_driver)[0] == 200
        stored = tmp_path / "artifacts" / experiment / run / "artifacts" / "m.bin"
        assert stored.read_bytes() == payload
        for name, value in admin.items():
            monkeypatch.setenv(name, value)
        from mlflow.server import get_app_client

        auth = get_app_client("basic-auth", tracking_uri=uri)
        as_alice = ("alice", "alice-long-enough-password")
        auth.create_user(*as_alice)
        assert call(*as_alice, f"experiments/get?experiment_id={experiment}")[0] == 200
        assert call(*as_alice, "runs/create", {"experiment_id": experiment})[0] == 403
        auth.grant_user_permission("alice", "experiment", experiment, "EDIT")
        assert call(*as_alice, "runs/create", {"experiment_id": experiment})[0] == 200
        if shutil.which("nginx") and shutil.which("openssl"):
            through_tls(tmp_path, port, as_driver)
        # MLflow ran the head's gunicorn options and the auth app's factory, in gunicorn.
        [gunicorn] = [
            child.cmdline()
            for child in psutil.Process(server.pid).children()
            if child.cmdline()[1:3] == ["-m", "gunicorn"]
        ]
        assert " ".join(gunicorn).count(head.options["--gunicorn-opts"]) == 1
        assert gunicorn[-1] == "mlflow.server.auth:create_app()"
    finally:
        server.terminate()
        # gunicorn's gthread worker waits out its 30 s graceful timeout while a client
        # holds a keep-alive connection younger than its 2 s keep-alive (MLflow's pooled
        # session in this process does).
        server.wait(timeout=60)
        log.close()
    server_log = (tmp_path / "server.log").read_text()
    assert "Using worker: gthread" in server_log and "Booting worker with pid" in server_log
    for secret in (driver["MLFLOW_TRACKING_PASSWORD"], admin["MLFLOW_TRACKING_PASSWORD"]):
        assert secret not in server_log


def nginx_config(ip: str = "10.0.1.10", server_name: str = "tuner.example.com") -> str:
    """The TLS terminator's config as bootstrap-head.sh writes it, with sample values."""
    text = (INFRA / "scripts" / "bootstrap-head.sh").read_text()
    match = re.search(r"\n  \{\n(.*?)\n  \} >/etc/nginx/conf.d/tuner.conf\n", text, flags=re.S)
    assert match, "bootstrap-head.sh writes no nginx config"
    out = subprocess.run(
        ["bash", "-euc", match.group(1)],
        env={"ip": ip, "TLS_SERVER_NAME": server_name, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_tls_fronts_the_loopback_ports_and_nginx_accepts_its_config(tmp_path: Path) -> None:
    config = nginx_config()
    servers = re.findall(r"listen (\S+) ssl;.*?proxy_pass (\S+);", config, flags=re.S)
    assert servers == [("10.0.1.10:8443", "http://127.0.0.1:8265"),
                       ("10.0.1.10:5443", "http://127.0.0.1:5000")]  # fmt: skip
    locals_tf = parse(TERRAFORM / "locals.tf")["locals"][0]
    assert locals_tf["tls_ports"] == {"jobs_api": 8443, "mlflow": 5443}
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in config
    head = (INFRA / "scripts" / "bootstrap-head.sh").read_text()
    assert "apt-get install -y -q nginx" in head, "the terminator comes from the distribution"
    if shutil.which("nginx") is None or shutil.which("openssl") is None:
        pytest.skip("nginx or openssl not installed; the config's shape is checked above")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=tuner.example.com", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    (tmp_path / "tuner.conf").write_text(
        nginx_config(ip="127.0.0.1").replace("/etc/nginx/tuner", str(tmp_path))
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/tuner.conf;\n}}\n"
    )
    out = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_no_client_ingress_without_tls(terraform: dict[str, Any]) -> None:
    """The default has no rule a client could use: SSM port forwarding is the way in."""
    [client_ingress] = [b["client_ingress"] for b in terraform["locals"] if "client_ingress" in b]
    assert client_ingress == "${var.tls != null && var.allowed_client_cidr != null}"
    rules = dict(resources(terraform, "aws_vpc_security_group_ingress_rule"))
    from_clients = [name for name, rule in rules.items() if "cidr_ipv4" in rule]
    assert from_clients == ["tls_from_clients"]
    # The raw ports listen on the head's loopback: no member (or client) rule names them.
    members = rules["ray_between_members"]["for_each"]
    assert 'if name != "dashboard"' in members
    assert "mlflow_port" not in str(rules)
    [(_, head)] = resources(terraform, "aws_instance")
    assert "${aws_security_group.clients.id}" in head["vpc_security_group_ids"]


def run_terraform(
    folder: Path, *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args], cwd=folder, env=TERRAFORM_ENV,
                          capture_output=True, text=True, check=check)  # fmt: skip


def terraform_plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`terraform plan` of variables.tf alone: its validations, no provider, no account."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform binary not installed")
    shutil.copy(TERRAFORM / "variables.tf", tmp_path / "variables.tf")
    base = ["-input=false", "-no-color", "-var", "vpc_id=vpc-0abc", "-var", "bucket_name=acme-x",
            "-var", 'subnet_ids=["subnet-0abc"]', "-var", "ami_id=ami-0abc"]  # fmt: skip
    if not (tmp_path / ".terraform.lock.hcl").exists() and not (tmp_path / ".terraform").exists():
        run_terraform(tmp_path, "init", "-input=false", "-no-color", check=True)
    return run_terraform(tmp_path, "plan", *base, *args)


TLS_VAR = (
    'tls={certificate_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:c",'
    'private_key_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:k",'
    'server_name="tuner.example.com"}'
)


def test_allowed_client_cidr_is_refused_without_tls(tmp_path: Path) -> None:
    assert terraform_plan(tmp_path).returncode == 0, "the default: no CIDR, no TLS"
    refused = terraform_plan(tmp_path, "-var", "allowed_client_cidr=10.0.0.0/16")
    assert refused.returncode != 0 and "allowed_client_cidr needs TLS" in refused.stderr
    allowed = terraform_plan(tmp_path, "-var", "allowed_client_cidr=10.0.0.0/16", "-var", TLS_VAR)
    assert allowed.returncode == 0, allowed.stderr
    world = terraform_plan(tmp_path, "-var", "allowed_client_cidr=0.0.0.0/0", "-var", TLS_VAR)
    assert world.returncode != 0
    key_in_plain = TLS_VAR.replace("arn:aws:secretsmanager:us-east-1:123456789012:secret:k",
                                   "-----BEGIN PRIVATE KEY-----")  # fmt: skip
    assert terraform_plan(tmp_path, "-var", key_in_plain).returncode != 0


def test_outputs_give_both_ways_in(terraform: dict[str, Any]) -> None:
    outputs = {name: body for block in terraform["output"] for name, body in block.items()}
    [forward] = [b["port_forward"] for b in terraform["locals"] if "port_forward" in b]
    assert "AWS-StartPortForwardingSessionToRemoteHost" in forward
    assert '\\"host\\":[\\"127.0.0.1\\"]' in forward
    assert "jobs_api = local.ray_ports.dashboard, mlflow = local.mlflow_port" in forward
    assert outputs["port_forward_commands"]["value"] == "${local.port_forward}"
    tls_urls = outputs["tls_urls"]["value"]
    assert tls_urls.startswith("${var.tls == null ? null :") and "local.mlflow_uri" in tls_urls
    [address] = [b["ray_address"] for b in terraform["locals"] if "ray_address" in b]
    assert "https://${var.tls.server_name}:${local.tls_ports.jobs_api}" in address
    assert "http://127.0.0.1:${local.ray_ports.dashboard}" in address


def test_ray_cluster_file_runs_the_auth_app_on_loopback_with_no_password() -> None:
    text = (INFRA / "ray" / "aws-spot.yaml").read_text()
    config = yaml.safe_load(text)
    setup = " ".join(config["head_setup_commands"])
    assert '"mlflow[auth]"' in setup
    assert "mlflow server --app-name basic-auth --host 127.0.0.1" in setup
    gunicorn_opts = head_mlflow_unit({}).options["--gunicorn-opts"]
    assert f'--gunicorn-opts "{gunicorn_opts}"' in setup, "not served as on the head"
    assert "MLFLOW_AUTH_CONFIG_PATH=" in setup and "mlflow-credentials.py files" in setup
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "driver.env" in start
    assert "0.0.0.0" not in text
    assert not re.search(r"(?i)(password|secret_key)\s*[=:]\s*[^\s/$]", text)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["node_config"]["IamInstanceProfile"]["Name"] == "tuner-head"
    script = config["file_mounts"]["/tmp/tuner/mlflow-credentials.py"]
    assert (REPO / script).is_file()


def test_user_data_is_gzipped_and_fits_ec2s_limit(terraform: dict[str, Any]) -> None:
    """EC2 refuses user data over 16 KiB; the head's scripts alone are about that."""
    import gzip

    [(_, head)] = resources(terraform, "aws_instance")
    [(_, template)] = resources(terraform, "aws_launch_template")
    assert "user_data" not in head
    for user_data in (head["user_data_base64"], template["user_data"]):
        assert user_data.startswith("${base64gzip(templatefile("), "cloud-init unpacks gzip"
    for role in ("head", "worker"):
        size = len(gzip.compress(render_user_data(role).encode()))
        assert size < 12 * 1024, f"{role}: {size} bytes gzipped; EC2 takes 16 KiB at most"


def allowed_hosts(tls_server_name: str) -> str:
    """The --allowed-hosts bootstrap-head.sh gives MLflow."""
    text = (INFRA / "scripts" / "bootstrap-head.sh").read_text()
    match = re.search(r'\n(allowed_hosts=".*?\nfi)\n', text, flags=re.S)
    assert match, "bootstrap-head.sh sets no allowed_hosts"
    out = subprocess.run(
        ["bash", "-euc", match.group(1) + '\nprintf %s "$allowed_hosts"'],
        env={"TLS_SERVER_NAME": tls_server_name, "PATH": os.environ["PATH"]},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


def through_tls(tmp_path: Path, mlflow_port: int, login: tuple[str, str]) -> None:
    """The head's nginx config, run for real in front of MLflow: https with the login
    works, without it MLflow refuses, and the certificate's name passes MLflow's host check."""
    import http.client
    import ssl
    import time

    from bench.servers import free_port

    tls_port = free_port()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=tuner.example.com", "-addext", "subjectAltName=DNS:tuner.example.com",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    # Only MLflow's server block: the Jobs API's differs in its ports alone (no Ray here).
    config = nginx_config(ip="127.0.0.1").replace("/etc/nginx/tuner", str(tmp_path))
    config = re.sub(r"server \{\n  listen 127.0.0.1:8443 .*?\n\}\n", "", config, flags=re.S)
    config = config.replace("127.0.0.1:5443", f"127.0.0.1:{tls_port}")
    config = config.replace("http://127.0.0.1:5000", f"http://127.0.0.1:{mlflow_port}")
    assert config.count("server {") == 1
    (tmp_path / "tuner.conf").write_text(config)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/tuner.conf;\n}}\n"
    )
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        context.check_hostname = False  # we dial 127.0.0.1; the chain is still verified

        def get(headers: dict[str, str]) -> int:
            for _ in range(50):
                try:
                    connection = http.client.HTTPSConnection(
                        "127.0.0.1", tls_port, context=context, timeout=10
                    )
                    connection.request(
                        "GET", "/api/2.0/mlflow/experiments/search?max_results=1",
                        headers={"Host": f"tuner.example.com:{tls_port}", **headers},
                    )  # fmt: skip
                    return connection.getresponse().status
                except ConnectionRefusedError:
                    time.sleep(0.1)
            raise AssertionError((tmp_path / "error.log").read_text())

        token = base64.b64encode(":".join(login).encode()).decode()
        assert get({"Authorization": f"Basic {token}"}) == 200
        assert get({}) == 401
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def test_client_ingress_and_addresses_evaluate_as_documented(tmp_path: Path) -> None:
    """Terraform itself evaluates the ingress rule's for_each and the client addresses
    (copied from network.tf and outputs.tf) for each way in: no provider, no account."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform binary not installed")
    shutil.copy(TERRAFORM / "variables.tf", tmp_path / "variables.tf")
    shutil.copy(TERRAFORM / "locals.tf", tmp_path / "locals.tf")
    rules = dict(resources(parse(TERRAFORM / "network.tf"), "aws_vpc_security_group_ingress_rule"))
    outputs = parse(TERRAFORM / "outputs.tf")["locals"][0]
    expressions = {
        "ingress": rules["tls_from_clients"]["for_each"],
        "ray_address": outputs["ray_address"],
        "mlflow_uri": outputs["mlflow_uri"],
    }
    probe = "".join(
        f'output "{name}" {{\n  value = {e[2:-1]}\n}}\n' for name, e in expressions.items()
    )
    (tmp_path / "probe.tf").write_text(probe)
    run_terraform(tmp_path, "init", "-input=false", "-no-color", check=True)

    def evaluate(*args: str) -> dict[str, Any]:
        base = ["-input=false", "-no-color", "-auto-approve", "-var", "vpc_id=vpc-0abc",
                "-var", "bucket_name=acme-x", "-var", 'subnet_ids=["subnet-0abc"]',
                "-var", "ami_id=ami-0abc"]  # fmt: skip
        applied = run_terraform(tmp_path, "apply", *base, *args)
        assert applied.returncode == 0, applied.stderr
        out = run_terraform(tmp_path, "output", "-json", check=True)
        return {name: body["value"] for name, body in json.loads(out.stdout).items()}

    default = evaluate()
    assert default == {"ingress": {}, "ray_address": "http://127.0.0.1:8265",
                       "mlflow_uri": "http://127.0.0.1:5000"}  # fmt: skip
    assert evaluate("-var", TLS_VAR)["ingress"] == {}, "TLS alone opens nothing"
    both = evaluate("-var", TLS_VAR, "-var", "allowed_client_cidr=10.0.0.0/16")
    assert both == {"ingress": {"jobs_api": 8443, "mlflow": 5443},
                    "ray_address": "https://tuner.example.com:8443",
                    "mlflow_uri": "https://tuner.example.com:5443"}  # fmt: skip


def boot_worker(tmp_path: Path, gpu_sharing: str | None, gpu: bool = True) -> dict[str, Any]:
    """bootstrap-worker.sh run for real against the real install-common.sh, with stand-ins
    for what needs a cloud instance (pip, SSM, IMDS), for systemctl and for NVIDIA's tools
    (nvidia-smi -L fails where the node has no GPU): the units it writes, in the order it
    starts them."""
    bin_dir, units, log = tmp_path / "bin", tmp_path / "units", tmp_path / "calls.log"
    bin_dir.mkdir()
    units.mkdir()
    tools = {"systemctl": "", "nvidia-cuda-mps-control": "",
             "nvidia-smi": "" if gpu else "exit 9"}  # fmt: skip
    for name, body in tools.items():
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >>"$CALLS"\n{body}\n')
        (bin_dir / name).chmod(0o755)
    common = tmp_path / "install-common.sh"
    common.write_text(
        (INFRA / "scripts" / "install-common.sh").read_text()
        + "install_tuner() { :; }\nfetch_ray_token() { :; }\n"
        + "private_ip() { echo 10.0.2.20; }\nprice_labels() { echo tuner.io/market=spot; }\n"
    )
    script = (INFRA / "scripts" / "bootstrap-worker.sh").read_text()
    assert ". /opt/tuner/install-common.sh\n" in script
    (tmp_path / "boot.sh").write_text(
        script.replace(". /opt/tuner/install-common.sh\n", f". {common}\n")
    )
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(log), "UNIT_DIR": str(units),
           "HEAD_IP": "10.0.1.10", "AWS_REGION": "us-east-1"}  # fmt: skip
    if gpu_sharing is not None:
        env["GPU_SHARING"] = gpu_sharing
    out = subprocess.run(["bash", str(tmp_path / "boot.sh")], env=env, capture_output=True,
                         text=True)  # fmt: skip
    calls = log.read_text().splitlines() if log.exists() else []
    written = {str(p.relative_to(units)): p.read_text() for p in units.rglob("*") if p.is_file()}
    started = [c.split()[-1] for c in calls if c.startswith("systemctl enable --now")]
    return {"rc": out.returncode, "stderr": out.stderr, "calls": calls, "units": written,
            "started": started}  # fmt: skip


MPS_ENV = ("Environment=CUDA_MPS_PIPE_DIRECTORY=/run/nvidia-mps",
           "Environment=CUDA_MPS_LOG_DIRECTORY=/var/log/nvidia-mps")  # fmt: skip


@pytest.mark.parametrize("gpu_sharing", ["mps", None], ids=["mps", "default"])
def test_worker_starts_the_mps_daemon_before_ray(tmp_path: Path, gpu_sharing: str | None) -> None:
    boot = boot_worker(tmp_path, gpu_sharing)
    assert boot["rc"] == 0, boot["stderr"]
    assert boot["started"] == ["nvidia-mps.service", "ray-worker.service",
                               "tuner-preemption-watch.service"]  # fmt: skip
    assert "nvidia-smi -L" in boot["calls"], "MPS only where an NVIDIA GPU answers"
    mps = boot["units"]["nvidia-mps.service"].splitlines()
    bin_dir = tmp_path / "bin"
    assert "Type=forking" in mps and "User=ray" in mps, "the daemon's user is Ray's"
    assert f"ExecStart={bin_dir}/nvidia-cuda-mps-control -d" in mps
    # EXCLUSIVE_PROCESS as root ("+") at every start, DEFAULT again once it stops.
    assert f"ExecStartPre=+{bin_dir}/nvidia-smi -c EXCLUSIVE_PROCESS" in mps
    assert f"ExecStopPost=+{bin_dir}/nvidia-smi -c DEFAULT" in mps
    assert "RuntimeDirectory=nvidia-mps" in mps and "LogsDirectory=nvidia-mps" in mps
    assert all(line in mps for line in MPS_ENV)
    # Ray's unit (through its drop-in) requires the daemon, starts after it and gets the
    # same pipe directory, which its worker processes inherit.
    ray = boot["units"]["ray-worker.service"] + boot["units"]["ray-worker.service.d/mps.conf"]
    lines = ray.splitlines()
    assert "Requires=nvidia-mps.service" in lines and "After=nvidia-mps.service" in lines
    assert all(line in lines for line in MPS_ENV)
    assert "User=ray" in lines


@pytest.mark.parametrize(("gpu_sharing", "gpu"), [("none", True), ("mps", False)],
                         ids=["none", "no-gpu"])  # fmt: skip
def test_worker_runs_ray_without_mps_when_off_or_without_a_gpu(
    tmp_path: Path, gpu_sharing: str, gpu: bool
) -> None:
    boot = boot_worker(tmp_path, gpu_sharing, gpu=gpu)
    assert boot["rc"] == 0, boot["stderr"]
    assert boot["started"] == ["ray-worker.service", "tuner-preemption-watch.service"]
    assert set(boot["units"]) == {"ray-worker.service", "tuner-preemption-watch.service"}
    assert "CUDA_MPS" not in boot["units"]["ray-worker.service"]
    assert not any(call.startswith("nvidia-cuda-mps-control") for call in boot["calls"])
    assert not any(" -c " in call for call in boot["calls"]), "compute mode left alone"


def test_worker_refuses_an_unknown_gpu_sharing(tmp_path: Path) -> None:
    boot = boot_worker(tmp_path, "mig")
    assert boot["rc"] != 0 and "gpu_sharing must be mps or none" in boot["stderr"]
    assert boot["started"] == [], "no Ray on a node whose boot went wrong"


def test_gpu_sharing_is_a_variable_passed_to_the_workers(terraform: dict[str, Any]) -> None:
    variables = {name: body for block in terraform["variable"] for name, body in block.items()}
    sharing = variables["gpu_sharing"]
    assert sharing["default"] == "mps" and sharing["type"] == "string"
    validation = only(sharing["validation"])
    assert validation["condition"] == '${contains(["mps", "none"], var.gpu_sharing)}'
    [(_, template)] = resources(terraform, "aws_launch_template")
    assert "gpu_sharing = var.gpu_sharing" in template["user_data"]
    [(_, head)] = resources(terraform, "aws_instance")
    assert 'gpu_sharing = "none"' in head["user_data_base64"], "the head runs no trials"
    assert "export GPU_SHARING='mps'" in render_user_data("worker")


def test_gpu_sharing_plans_only_mps_or_none(tmp_path: Path) -> None:
    assert terraform_plan(tmp_path, "-var", "gpu_sharing=none").returncode == 0
    refused = terraform_plan(tmp_path, "-var", "gpu_sharing=mig")
    assert refused.returncode != 0 and "gpu_sharing: mps or none" in refused.stderr


def test_ray_cluster_file_starts_ray_workers_through_mps() -> None:
    config = yaml.safe_load((INFRA / "ray" / "aws-spot.yaml").read_text())
    mounted = config["file_mounts"]["/tmp/tuner/install-common.sh"]
    assert mounted == "infra/scripts/install-common.sh"
    [setup] = [c for c in config["worker_setup_commands"] if "share_gpu" in c]
    assert setup.startswith("sudo GPU_SHARING=mps bash -c")
    assert 'share_gpu "$GPU_SHARING" ubuntu' in setup, "the daemon's user is the one of Ray"
    [start] = [c for c in config["worker_start_ray_commands"] if "ray start" in c]
    common = (INFRA / "scripts" / "install-common.sh").read_text()
    for name, variable in (("PIPE", "MPS_PIPE_DIR"), ("LOG", "MPS_LOG_DIR")):
        [folder] = re.findall(rf"^readonly {variable}=(\S+)$", common, flags=re.M)
        assert f"CUDA_MPS_{name}_DIRECTORY={folder}" in start
    assert start.index("CUDA_MPS_PIPE_DIRECTORY") < start.index("ray start")
