"""``sweettok serve``: run the encode/decode endpoint on Ray Serve, or write its ``serve deploy`` config.

Settings come from ``--config`` YAML (a ServeConfig mapping, or a whole ``serve deploy`` file whose first
application's ``args`` are used) with ``--set key=value`` overrides, then the flags below.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import yaml

from sweettok.config import PRESETS
from sweettok_platform.core.bundles import with_default_bundle
from sweettok_platform.core.config import add_config_args, load_yaml, resolve_settings
from sweettok_platform.serve.config import ServeConfig, deploy_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the encode/decode HTTP endpoint (Ray Serve)",
                       description="Serve POST /v1/encode and /v1/decode (OpenAPI at /docs) until Ctrl-C.")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--bundle", metavar="URI",
                       help="tokenizer bundle (local or s3://); default: the shipped small-study bundle")
    model.add_argument("--preset", choices=sorted(PRESETS), help="a preset with seeded fresh weights")
    p.add_argument("--seed", type=int, help="initialisation seed with --preset")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--no-batching", dest="batching", action="store_false", default=None,
                   help="one model call per request")
    p.add_argument("--direct-ingress", action="store_true", default=None,
                   help="ingress replicas also answer on their own ports, skipping the proxy (printed at start)")
    p.add_argument("--api-key-env", metavar="VAR", help="require header X-API-Key equal to this variable's value")
    p.add_argument("--allow-uri-prefix", dest="allowed_uri_prefixes", action="append", metavar="S3_PREFIX",
                   help="accept {\"uri\": ...} inputs under this s3://bucket[/folder] (repeatable; default: "
                        "URI input off)")
    p.add_argument("--address", help="Ray cluster to connect to (default: start a local one)")
    add_config_args(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--print-config", action="store_true", help="print the `serve deploy` YAML and exit")
    out.add_argument("--write-config", metavar="YAML", help="write the `serve deploy` YAML and exit")
    p.set_defaults(func=run)


FLAGS = {k: k for k in ("bundle", "preset", "seed", "host", "port", "batching", "api_key_env", "direct_ingress",
                        "allowed_uri_prefixes")}


def build_config(args: argparse.Namespace) -> ServeConfig:
    """The ServeConfig from YAML (settings, or a `serve deploy` file) < ``--set`` < flags (``core.config``)."""
    settings = load_yaml(args.config)
    if "applications" in settings:  # a serve deploy file: its first application's args (and its HTTP options)
        http = settings.get("http_options") or {}
        settings = {**{k: http[k] for k in ("host", "port") if k in http},
                    **dict(settings["applications"][0].get("args") or {})}
    settings = resolve_settings(args, FLAGS, base=settings, one_of=(("bundle", "preset"),))
    return ServeConfig.from_dict(with_default_bundle(settings))


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.print_config or args.write_config:
        text = yaml.safe_dump(deploy_config(config), sort_keys=False)
        if args.write_config:
            with open(args.write_config, "w") as f:
                f.write(text)
            print(f"wrote {args.write_config} (run it with: serve deploy {args.write_config})")
        else:
            sys.stdout.write(text)
        return 0

    import ray
    from ray import serve

    from sweettok_platform.serve.lifecycle import ingress_urls, is_running, local_ray_env, rollout, start

    began = time.monotonic()
    if args.address is None:
        local_ray_env(config)
    ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    # SIGTERM (kill, systemd, Kubernetes) ends like Ctrl-C: the app and a local Ray cluster are shut down
    # (set after ray.init, which installs a handler of its own that only logs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.address is not None and is_running(config):  # a new bundle for the running app: roll it out
        done = rollout(config)
        print(f"sweettok serve: {config.name} now serves {done.bundle or config.preset} (revision {done.revision:.0f}); "
              f"rolled out in {time.monotonic() - began:.0f} s with no request dropped", flush=True)
        return 0
    try:
        url = start(config)
        model = config.bundle or f"preset {config.preset} (seed {config.seed})"
        print(f"sweettok serve: {model} at {url} (docs at {url}/docs), ready in {time.monotonic() - began:.0f} s; "
              "Ctrl-C to stop", flush=True)
        if config.direct_ingress:
            print(f"sweettok serve: ingress replicas (direct, no proxy hop): {' '.join(ingress_urls(config))}",
                  flush=True)
        while True:
            time.sleep(3600)
    finally:
        serve.shutdown()
        ray.shutdown()  # a cluster this command started goes with it
