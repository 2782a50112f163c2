"""The head's MLflow credentials, made at first boot and kept in SSM Parameter Store.

`files`: reads the admin and the sweep drivers' passwords from their SecureString
parameters; a parameter that still holds Terraform's placeholder gets a fresh password
(written back, encrypted with the cluster's key), so no password ever passes through
Terraform, user data or a log. Writes, readable only by root and the one service group
that needs each:
  OUT/auth.ini    MLflow's auth config (user store, admin, default permission)  root:mlflow
  OUT/mlflow.env  MLFLOW_FLASK_SERVER_SECRET_KEY (made here once, kept on disk)  root:mlflow
  OUT/admin.env   the admin's login, for `driver-user` below                    root only
  DRIVER_ENV      MLFLOW_TRACKING_USERNAME/PASSWORD of the sweep drivers        root:ray
`driver-user`: once MLflow answers, creates the drivers' user (or resets its password
to the one in SSM) through MLflow's auth API, logged in as the admin.

Secrets never reach argv, stdout or stderr: only names and paths are printed.
"""

from __future__ import annotations

import argparse
import configparser
import grp
import io
import os
import secrets
import sys
import time
import urllib.request
from pathlib import Path

# Terraform creates each parameter with this value and ignores later changes to it;
# the first boot replaces it. infra/terraform/aws/secrets.tf names the same string.
PLACEHOLDER = "first-boot-sets-this"
ADMIN_USERNAME = "admin"
DRIVER_USERNAME = "tuner-driver"


def get_or_create(ssm, name: str, kms_key: str | None) -> str:
    value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    if value != PLACEHOLDER:
        return value
    value = secrets.token_urlsafe(32)
    # Without KeyId an overwrite would fall back to the account's default aws/ssm key.
    extra = {"KeyId": kms_key} if kms_key else {}
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True, **extra)
    return value


def write_private(path: Path, text: str, group: str | None) -> None:
    """Write `text` readable by root and `group` only (0640), never world-readable."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640 if group else 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if group:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def files(args: argparse.Namespace, ssm=None) -> None:
    if ssm is None:
        import boto3

        ssm = boto3.client("ssm", region_name=args.region)
    admin = get_or_create(ssm, args.admin_parameter, args.kms_key)
    driver = get_or_create(ssm, args.driver_parameter, args.kms_key)
    out = Path(args.out)
    out.mkdir(mode=0o750, parents=True, exist_ok=True)

    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": args.default_permission,
        "database_uri": args.auth_database_uri,
        "admin_username": ADMIN_USERNAME,
        # Read only when the user store has no admin yet (a new head); rotating it later
        # goes through MLflow's update-password API (infra/README.md).
        "admin_password": admin,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    text = io.StringIO()
    config.write(text)
    write_private(out / "auth.ini", text.getvalue(), args.mlflow_group)

    # The Flask secret signs CSRF tokens of this one server: it never leaves the head,
    # and a reboot keeps it (a new one would only log browsers out).
    env = out / "mlflow.env"
    key = read_env(env).get("MLFLOW_FLASK_SERVER_SECRET_KEY") if env.exists() else None
    key = key or secrets.token_urlsafe(32)
    write_private(env, f"MLFLOW_FLASK_SERVER_SECRET_KEY={key}\n", args.mlflow_group)

    write_private(
        Path(args.driver_env),
        f"MLFLOW_TRACKING_USERNAME={DRIVER_USERNAME}\nMLFLOW_TRACKING_PASSWORD={driver}\n",
        args.driver_group,
    )
    write_private(
        out / "admin.env",
        f"MLFLOW_TRACKING_USERNAME={ADMIN_USERNAME}\nMLFLOW_TRACKING_PASSWORD={admin}\n",
        None,
    )
    print(f"MLflow credentials from {args.admin_parameter}, {args.driver_parameter} in {out}")


def driver_user(args: argparse.Namespace) -> None:
    for _ in range(args.wait_s):
        try:
            with urllib.request.urlopen(f"{args.uri}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        time.sleep(1)
    else:
        sys.exit(f"MLflow at {args.uri} did not answer in {args.wait_s} s")
    out = Path(args.out)
    # MLflow's client reads the login from the environment: never from argv.
    os.environ.update(read_env(out / "admin.env"))
    password = read_env(Path(args.driver_env))["MLFLOW_TRACKING_PASSWORD"]

    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    client = get_app_client("basic-auth", tracking_uri=args.uri)
    try:
        client.get_user(DRIVER_USERNAME)
    except MlflowException:
        client.create_user(DRIVER_USERNAME, password)
        print(f"MLflow user {DRIVER_USERNAME} created")
    else:
        client.update_user_password(DRIVER_USERNAME, password)
        print(f"MLflow user {DRIVER_USERNAME} exists; password set from SSM")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("files", help="passwords from SSM into the head's config files")
    made.add_argument("--region", required=True)
    made.add_argument("--kms-key", default=None)
    made.add_argument("--admin-parameter", required=True)
    made.add_argument("--driver-parameter", required=True)
    made.add_argument("--auth-database-uri", required=True)
    made.add_argument("--default-permission", choices=["READ", "NO_PERMISSIONS"], default="READ")
    made.add_argument("--out", required=True)
    made.add_argument("--driver-env", required=True)
    made.add_argument("--mlflow-group", default=None)
    made.add_argument("--driver-group", default=None)
    user = commands.add_parser("driver-user", help="create the sweep drivers' MLflow user")
    user.add_argument("--uri", default="http://127.0.0.1:5000")
    user.add_argument("--out", required=True)
    user.add_argument("--driver-env", required=True)
    user.add_argument("--wait-s", type=int, default=300)
    args = parser.parse_args(argv)
    if args.command == "files":
        files(args)
    else:
        driver_user(args)


if __name__ == "__main__":
    main()
