"""Secrets in a sweep's `config`: which keys hold one, and what tuner may write of them.

A key whose name says it holds a secret (`api_token`, `db_password`,
`aws_secret_access_key`, or a pattern the sweep adds under `secret_keys`) is never
written in plain text by tuner: MLflow, the storage's `sweep.yaml` and Ray's stored
config see `WITHHELD` in its place, and the literal value reaches the trials through
Ray's object store, in memory. A value may instead name an environment variable,
`${env:NAME}`, resolved in the trial's own process: then nothing secret passes through
the driver at all, the one way that works for a cluster's nodes.

This module only reads names and values; delivering them is `tuner.engine.trial_config`.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlparse

from tuner.spec.errors import SpecError

# What MLflow, the storage and Ray's state hold instead of a secret's value.
WITHHELD = "<secret: not stored>"

# A word anywhere in the name makes it a secret: `db_password`, `client_secret_id`.
_SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "secrets", "credential", "credentials"}
)
# Only as the last word: `api_key` and `hf_token` are secrets, `key_size` and
# `token_dim` are knobs of a model.
_SECRET_LAST_WORDS = frozenset({"token", "key", "apikey", "privatekey", "dsn"})

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}?")


def looks_secret(name: str, patterns: Iterable[str] = ()) -> bool:
    """Whether a config key's name says it holds a secret (`patterns` are the sweep's
    `secret_keys`, shell-style and case-blind: `*_dsn`, `webhook_url`)."""
    words = [word.lower() for word in _WORD.findall(name)]
    if any(word in _SECRET_WORDS for word in words):
        return True
    if words and words[-1] in _SECRET_LAST_WORDS:
        return True
    return any(fnmatch.fnmatchcase(name.lower(), pattern.lower()) for pattern in patterns)


def env_names(value: Any) -> Iterator[str]:
    """Every NAME of a `${env:NAME}` in `value`, its strings at any depth."""
    if isinstance(value, str):
        yield from ENV_REFERENCE.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from env_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from env_names(item)


def malformed_reference(value: Any) -> str | None:
    """The first `${...}` in `value` that is not a well-formed `${env:NAME}`, else None."""
    if isinstance(value, str):
        for match in _ANY_REFERENCE.finditer(value):
            if not ENV_REFERENCE.fullmatch(match.group()):
                return match.group()
        return None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        if (found := malformed_reference(item)) is not None:
            return found
    return None


def _holds_literal(value: Any) -> bool:
    """A secret key's value that would leak: anything but a string made of `${env:NAME}`
    references alone (names, fine to show), or a URL whose password is one. Other text
    beside a reference may be part of the secret (`abc${env:PW}`, `sk-live-${env:KEY}`),
    so such a value is withheld whole."""
    if not isinstance(value, str) or not value:
        return True
    if not ENV_REFERENCE.sub("", value):
        return False
    return not _url_with_referenced_password(value)


def _url_with_referenced_password(value: str) -> bool:
    """`postgresql://app:${env:PW}@db/x`: a URL that has a secret slot (its password,
    a secret query parameter), each filled by a reference; the rest is where it lives."""
    secrets = _url_slots(value)
    return bool(secrets) and all(ENV_REFERENCE.fullmatch(secret) for secret in secrets)


def _masked(value: Any, patterns: tuple[str, ...]) -> tuple[Any, bool]:
    """(value with every secret under it withheld, whether anything was)."""
    if isinstance(value, dict):
        masked: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            if looks_secret(str(key), patterns) and _holds_literal(item):
                masked[key], changed = WITHHELD, True
            else:
                masked[key], inner = _masked(item, patterns)
                changed = changed or inner
        return masked, changed
    if isinstance(value, list):
        pairs = [_masked(item, patterns) for item in value]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    if isinstance(value, str) and _holds_url_password(value):
        return WITHHELD, True  # `db_url: postgresql://app:hunter2@db/x`, whatever its name
    return value, False


def _holds_url_password(value: str) -> bool:
    """A URL with a password written in it, in its login or its query."""
    return any(not ENV_REFERENCE.fullmatch(secret) for secret in _url_slots(value))


def _url_slots(value: str) -> list[str]:
    """What fills a URL's secret slots (its password, its secret query parameters); none
    for a value that is no URL."""
    if "://" not in value:
        return []
    try:
        return url_secrets(value)
    except ValueError:  # not a URL after all (`http://[x`)
        return []


def withhold(
    config: dict[str, Any], patterns: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config as tuner may write it, the top-level entries that held a secret, as written).

    The second part is what a trial needs put back; it is never written anywhere.
    """
    patterns = tuple(patterns)
    shown, withheld = {}, {}
    for key, value in config.items():
        masked, changed = _masked({key: value}, patterns)
        shown[key] = masked[key]
        if changed:
            withheld[key] = value
    return shown, withheld


def withheld_keys(value: Any, prefix: str = "config") -> list[str]:
    """Key paths whose value tuner withheld (read back from a stored sweep file), in
    mappings and lists at any depth, as `withhold` finds them."""
    if value == WITHHELD:
        return [prefix]
    if isinstance(value, dict):
        return [
            path for key, item in value.items() for path in withheld_keys(item, f"{prefix}.{key}")
        ]
    if isinstance(value, list):
        return [
            path for i, item in enumerate(value) for path in withheld_keys(item, f"{prefix}[{i}]")
        ]
    return []


class MissingEnvironment(LookupError):
    """A `${env:NAME}` of the config names a variable this process does not have."""

    def __init__(self, key: str, name: str) -> None:
        super().__init__(f"{key}: environment variable {name} is not set")
        self.key = key
        self.name = name


def resolved(value: Any, key: str = "config", environ: dict[str, str] | None = None) -> Any:
    """`value` with each `${env:NAME}` replaced by NAME's value in `environ` (this
    process's environment by default); MissingEnvironment names the first unset one."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise MissingEnvironment(key, name)
            return env[name]

        return ENV_REFERENCE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: resolved(item, f"{key}.{k}", environ) for k, item in value.items()}
    if isinstance(value, list):
        return [resolved(item, f"{key}[{i}]", environ) for i, item in enumerate(value)]
    return value


def _secret_query_names(url: str) -> list[tuple[str, str]]:
    """(name, value) of a URL's query parameters that hold a secret: drivers take a
    password there too (`?password=`, libpq's `sslpassword`)."""
    query = parse_qsl(urlparse(url).query, keep_blank_values=True)
    return [(k, v) for k, v in query if looks_secret(k) or "password" in k.lower()]


def url_secrets(url: str) -> list[str]:
    """The secret values in a URL: its password and secret query parameters."""
    found = [value for _, value in _secret_query_names(url) if value]
    password = urlparse(url).password
    return [password, *found] if password else found


def has_login(url: str) -> bool:
    """Whether a URL carries a login (`user@`, `user:password@`). tuner refuses one in
    any URL it is given: it would print the URL and store it (with a job, in MLflow),
    and logins come from the environment instead."""
    parsed = urlparse(url)
    return parsed.username is not None or parsed.password is not None


def hidden(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` in it as ***, fit to print."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def storage_url_problem(url: str) -> str | None:
    """Why a database URL cannot be a sweep's study storage as written, or None.

    The sweep file is written to MLflow: a password must come from the environment."""
    if (reference := malformed_reference(url)) is not None:
        return f"{reference} is not an ${{env:NAME}} reference"
    if ENV_REFERENCE.fullmatch(url):
        return None  # the whole URL comes from the environment
    parsed = urlparse(url)
    if not re.fullmatch(r"[a-z][a-z0-9]*(\+[a-z0-9_]+)?", parsed.scheme or ""):
        return (
            f"{url!r} is not a database URL (sqlite:///optuna.db, postgresql://user@host/db, ...)"
        )
    written = [("password", parsed.password)] if parsed.password is not None else []
    for name, value in [*written, *_secret_query_names(url)]:
        if not ENV_REFERENCE.fullmatch(value):
            return (
                f"holds a {name}, which tuner would write to MLflow with the sweep file: "
                "write ${env:NAME} in its place"
            )
    return None


def check_environment(config: dict[str, Any]) -> None:
    """SpecError for the first `${env:NAME}` of `config` this process lacks (trials on
    an embedded Ray inherit this process's environment)."""
    try:
        resolved(config)
    except MissingEnvironment as exc:
        raise SpecError(
            None, exc.key, f"${{env:{exc.name}}}: environment variable {exc.name} is not set"
        ) from None


def secrets_back(
    sweep: str, stored: dict[str, Any], from_file: dict[str, Any] | None
) -> dict[str, Any]:
    """The config entries tuner withheld from sweep `sweep`'s stored config, taken again
    from what the user's sweep file withholds (`from_file`, None without a file);
    SpecError when they are needed and not there."""
    # (top-level key, path): a key may hold dots (`db.password`), so the path alone
    # does not say which top-level entry the sweep file must give back.
    needed = [
        (top, path)
        for top, value in stored.items()
        for path in withheld_keys(value, f"config.{top}")
    ]
    if not needed:
        return {}
    hint = (
        f"tuner does not store the secrets of sweep {sweep!r} "
        f"({', '.join(path for _, path in needed)}): "
        f"resume it with its sweep file, `tuner resume path/to/{sweep}.yaml`"
    )
    if from_file is None:
        raise SpecError(None, needed[0][1], hint)
    for top, path in needed:
        if top not in from_file:
            raise SpecError(None, path, f"not a secret in the sweep file given; {hint}")
    return {key: value for key, value in from_file.items() if key in stored}
