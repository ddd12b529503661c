"""Submitting a job spec to a Ray cluster so that it runs as written, from any checkout and directory.

``submit(spec_path, address)``:
- reads the spec and decides what it is (train / tokenize / eval / ar-train / ar-sample, from its keys, or
  ``command``);
- resolves every relative local path in it (inputs and outputs, and the outputs a job would otherwise put under
  its working directory by default) against the submitter's directory, and checks that the inputs
  exist; a local path the cluster cannot see (a remote cluster: paths must be ``s3://`` or on a mount the
  nodes share, ``shared_paths``) is refused before anything is submitted, with the fix in the message;
- ships the project's code with the job (Ray ``runtime_env`` ``py_modules``: the ``sweettok`` and
  ``sweettok_platform`` packages of this checkout, so the job imports one copy of the code) and the resolved
  spec in a ``working_dir`` of its own (nothing else of the checkout is uploaded);
- forwards this machine's storage settings (``sweettok.storage.ENV_VARS`` that are set: endpoint, region,
  credentials) in the job's ``env_vars``, unless ``forward_storage=False``; their values are never printed;
- runs ``python -m sweettok_platform.cli <command> --config <spec>`` there, through Ray's
  ``JobSubmissionClient`` (token authentication as Ray 2.60 does it: ``RAY_AUTH_TOKEN``,
  ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``; a refusal is reported with those names).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from sweettok_platform.eval.metrics import WEIGHT_SETTINGS

# per command: dotted keys holding local paths, and which of them are inputs that must exist
PATH_KEYS = {
    "train": (["storage_path", "log_dir", "export", "init", "lpips_vgg_weights", "dataset.source.paths",
               "dataset.source.root", "dataset.cache_dir", "model.overrides.teacher.checkpoint",
               "model.overrides.quantizer.codebook"],
              ["init", "lpips_vgg_weights", "dataset.source.paths", "dataset.source.root",
               "model.overrides.teacher.checkpoint", "model.overrides.quantizer.codebook"]),
    "tokenize": (["source.root", "source.paths", "output", "encode.bundle"], ["source.root", "source.paths", "encode.bundle"]),
    "eval": (["source.root", "source.paths", "output", "bundle", *WEIGHT_SETTINGS],
             ["source.root", "bundle", *WEIGHT_SETTINGS]),
    "ar-train": (["storage_path", "log_dir", "corpus"], ["corpus"]),
    "ar-sample": (["checkpoint", "output", "bundle"], ["checkpoint", "bundle"]),
}
# the `sweettok` arguments each kind runs with (the resolved spec is passed as --config)
COMMANDS = {"train": "train", "tokenize": "tokenize", "eval": "eval", "ar-train": "ar train",
            "ar-sample": "ar sample"}
# outputs a job puts under its working directory when the spec leaves them out: (key, default from the spec);
# filled in on the submitter's side so they land in the submitter's directory, not in Ray's temporary copy
DEFAULT_OUTPUTS = {"train": [("log_dir", lambda spec: os.path.join("runs", str(spec.get("name", ""))))],
                   "ar-train": [("log_dir", lambda spec: os.path.join("runs", f"{spec.get('name', '')}-ar"))]}
SPEC_NAME = "job.yaml"
AGENT_WAIT_S = 60.0  # how long a submission waits for a freshly started head's job agent


class SubmitError(ValueError):
    """A job that would not run as submitted; the message says what to change."""


def job_kind(spec: dict[str, Any]) -> str:
    """train / tokenize / eval / ar-train / ar-sample, from the spec's keys."""
    if "checkpoint" in spec and "classes" in spec:  # a generator checkpoint to sample
        return "ar-sample"
    if "corpus" in spec:  # only the generator's training job reads a token corpus
        return "ar-train"
    if "stages" in spec or "dataset" in spec or "stage_overrides" in spec:
        return "train"
    if "encode" in spec:  # a tokenize job names its tokenizer there; an eval job at the top level
        return "tokenize"
    if "source" in spec:
        return "eval"
    raise SubmitError("cannot tell whether this spec is a train, tokenize, eval, ar-train or ar-sample job; "
                      "pass --command")


def is_local_cluster(address: str | None) -> bool:
    """Whether the cluster runs on this machine (so it sees this machine's files)."""
    if address in (None, "", "auto", "local"):
        return True
    host = urlparse(address if "://" in address else f"http://{address}").hostname
    return host in ("127.0.0.1", "localhost", "::1")


def resolve_paths(spec: dict[str, Any], kind: str, base: Path, *, local_cluster: bool,
                  shared_paths: list[str]) -> dict[str, Any]:
    """``spec`` with relative local paths made absolute against ``base``; refuses missing inputs and (for a
    remote cluster) local paths outside ``shared_paths``."""
    keys, inputs = PATH_KEYS[kind]
    out = yaml.safe_load(yaml.safe_dump(spec))  # a deep copy of plain data
    for key, default in DEFAULT_OUTPUTS.get(kind, []):
        if out.get(key) in (None, ""):
            out[key] = default(out)
    for key in keys:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or node.get(leaf) in (None, ""):
            continue
        values = node[leaf] if isinstance(node[leaf], list) else [node[leaf]]
        fixed = []
        for value in values:
            value = str(value)
            if "://" in value:  # s3:// and friends: the nodes read them themselves
                fixed.append(value)
                continue
            path = os.path.abspath(os.path.join(base, os.path.expanduser(value)))
            if key in inputs and not _exists(path):
                raise SubmitError(f"{key}: {path} does not exist on this machine; fix the path in the job spec")
            if not local_cluster and not any(path.startswith(os.path.abspath(p) + os.sep) or path == p
                                             for p in shared_paths):
                raise SubmitError(
                    f"{key}: {path} is on this machine, which the cluster's nodes cannot read; put it on S3 "
                    "(s3://bucket/prefix) or on a filesystem every node mounts, and name that mount with "
                    "--shared-path")
            fixed.append(path)
        node[leaf] = fixed if isinstance(node[leaf], list) else fixed[0]
    return out


def _exists(path: str) -> bool:
    import glob

    return os.path.exists(path) or bool(glob.glob(path))


def runtime_env(spec_dir: str, *, forward_storage: bool = True) -> dict[str, Any]:
    """The job's runtime_env: this checkout's two packages, the directory holding the resolved spec, and
    (``forward_storage``) this machine's storage settings, only those that are set."""
    import sweettok
    import sweettok_platform
    from sweettok.storage import storage_env

    env = {"PYTHONUNBUFFERED": "1", **(storage_env() if forward_storage else {})}
    return {"working_dir": spec_dir,
            "py_modules": [os.path.dirname(sweettok.__file__), os.path.dirname(sweettok_platform.__file__)],
            "env_vars": env}


def client(address: str | None):
    """Ray's JobSubmissionClient for ``address`` (default: RAY_ADDRESS, else the local head's dashboard)."""
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"  # Ray's client sends its token only in token mode
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_ADDRESS") or "http://127.0.0.1:8265"
    try:
        return JobSubmissionClient(address)
    except Exception as e:  # noqa: BLE001 - connection and authentication errors come in many types
        text = str(e)
        if "401" in text or "auth" in text.lower() or "token" in text.lower():
            raise SubmitError(
                f"the cluster at {address} refused the connection ({text.splitlines()[0][:200]}); it uses "
                "token authentication: set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH (default ~/.ray/auth_token, "
                "copied from the head), or start the cluster with RAY_AUTH_MODE=disabled on a trusted network"
            ) from None
        raise SubmitError(f"cannot reach a Ray cluster at {address}: {text.splitlines()[0][:200]}") from None


def submit(spec_path: str, address: str | None = None, *, command: str | None = None,
           shared_paths: list[str] | None = None, base: str | None = None, forward_storage: bool = True) -> str:
    """Check, resolve and submit ``spec_path``; returns the Ray job's submission id."""
    with open(spec_path) as f:
        spec = yaml.safe_load(f) or {}
    if not isinstance(spec, dict):
        raise SubmitError(f"{spec_path}: expected a mapping of settings")
    kind = (command or job_kind(spec)).replace(" ", "-")  # "ar train" as typed on the command line
    if kind not in PATH_KEYS:
        raise SubmitError(f"unknown command {kind!r}; expected one of {sorted(PATH_KEYS)}")
    resolved = resolve_paths(spec, kind, Path(base or os.getcwd()), local_cluster=is_local_cluster(address),
                             shared_paths=shared_paths or [])
    jobs = client(address)
    spec_dir = tempfile.mkdtemp(prefix="sweettok-submit-")
    with open(os.path.join(spec_dir, SPEC_NAME), "w") as f:
        yaml.safe_dump(resolved, f, sort_keys=False)
    # the python of this machine for a cluster on it (a head started from a virtualenv's `ray` does not put
    # that env on its jobs' PATH); on a remote cluster, the nodes' own (the image's)
    python = shlex.quote(sys.executable) if is_local_cluster(address) else "python"
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            entrypoint = f"{python} -m sweettok_platform.cli {COMMANDS[kind]} --config {SPEC_NAME}"
            return jobs.submit_job(entrypoint=entrypoint,
                                   runtime_env=runtime_env(spec_dir, forward_storage=forward_storage),
                                   metadata={"sweettok_command": kind, "spec": os.path.abspath(spec_path)})
        except RuntimeError as e:  # a head that just started has no job agent yet
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
