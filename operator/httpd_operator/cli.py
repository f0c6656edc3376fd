"""`httpd-operator`: run the operator, render a site offline, or try it all in an emulated cluster."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from httpd_operator import KIND, __version__
from httpd_operator.errors import SpecError
from httpd_operator.settings import DEFAULT_IMAGE, DEFAULT_RESOURCES, EXPORTER_IMAGE, Settings


def _policy_options(parser: argparse.ArgumentParser) -> None:
    """Options that change what sites get; shared by `run` and `render` so both agree."""
    env_paths = [p for p in os.environ.get("HTTPD_OPERATOR_ALLOW_HOST_PATHS", "").split(":") if p]
    parser.add_argument("--default-image", default=os.environ.get("HTTPD_OPERATOR_DEFAULT_IMAGE", DEFAULT_IMAGE),
                        help="image for sites that name none (default: %(default)s)")
    parser.add_argument("--exporter-image",
                        default=os.environ.get("HTTPD_OPERATOR_EXPORTER_IMAGE", EXPORTER_IMAGE),
                        help="metrics sidecar of sites with spec.metrics.enabled (default: %(default)s)")
    parser.add_argument("--allow-host-path", action="append", default=env_paths, metavar="PREFIX",
                        help="allow HostPath volumes under PREFIX (repeatable; "
                             "env HTTPD_OPERATOR_ALLOW_HOST_PATHS, colon-separated)")
    parser.add_argument("--default-resources", metavar="JSON",
                        default=os.environ.get("HTTPD_OPERATOR_DEFAULT_RESOURCES"),
                        help="the httpd container's resources for sites without spec.resources, as JSON or "
                             "YAML, e.g. '{requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}'; "
                             "'{}' for none (env HTTPD_OPERATOR_DEFAULT_RESOURCES; default: "
                             f"{json.dumps(DEFAULT_RESOURCES, separators=(',', ':'))})")
    parser.add_argument("--no-network-policies", action="store_true",
                        default=os.environ.get("HTTPD_OPERATOR_NETWORK_POLICIES", "true") == "false",
                        help="give sites no NetworkPolicy (and watch none); per site: spec.networkPolicy.enabled "
                             "(env HTTPD_OPERATOR_NETWORK_POLICIES=false)")
    parser.add_argument("--metrics-namespace", action="append", metavar="NS",
                        help="a namespace whose pods may scrape sites' metrics ports (repeatable; default: "
                             "monitoring; env HTTPD_OPERATOR_METRICS_NAMESPACES, comma-separated, empty: none)")
    parser.add_argument("--no-protect-volumes", action="store_true",
                        help="do not set bound PersistentVolumes of Retain claims to Retain "
                             "(for clusters where the operator may not patch PersistentVolumes)")


def default_resources(text: str | None) -> dict[str, Any]:
    """The `--default-resources` preset, checked as `spec.resources` is; a one-line error names
    the flag and the field."""
    from httpd_operator.spec import check_resources

    if text is None:
        return {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SystemExit(f"--default-resources: not JSON or YAML: {str(exc).splitlines()[0]}") from None
    try:
        return check_resources({} if value is None else value, "--default-resources")
    except SpecError as exc:
        raise SystemExit(exc.message) from None


def metrics_namespaces(names: list[str] | None) -> tuple[str, ...]:
    """--metrics-namespace, else the environment's list, else `monitoring`; names checked."""
    from httpd_operator.spec_network import namespace_names

    if names is None:
        env = os.environ.get("HTTPD_OPERATOR_METRICS_NAMESPACES")
        names = ["monitoring"] if env is None else [n.strip() for n in env.split(",") if n.strip()]
    try:
        return namespace_names(names, "--metrics-namespace")
    except SpecError as exc:
        raise SystemExit(exc.message) from None


def settings_from(args: argparse.Namespace) -> Settings:
    prefixes = []
    for prefix in args.allow_host_path:
        if not prefix.startswith("/") or ".." in prefix.split("/"):
            raise SystemExit(f"--allow-host-path {prefix!r}: must be an absolute path without '..'")
        prefixes.append(os.path.normpath(prefix))
    return Settings(default_image=args.default_image, exporter_image=args.exporter_image,
                    allowed_host_paths=tuple(prefixes),
                    protect_volumes=not args.no_protect_volumes,
                    default_resources=default_resources(args.default_resources),
                    network_policies=not args.no_network_policies,
                    metrics_namespaces=metrics_namespaces(args.metrics_namespace))


def cmd_run(args: argparse.Namespace) -> int:
    # kopf imports the `kubernetes` client whenever it can (for its optional login through it);
    # the operator logs in by itself (connection.py), so the long-running process is spared its
    # 22 MiB of generated models. Nothing below needs it.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from httpd_operator.kube import load_configuration
    from httpd_operator.runner import run

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # kopf logs every handler call at INFO: costly at scale, and noise
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = [] if args.all_namespaces else args.namespace
    run(settings_from(args), load_configuration(args.kubeconfig, args.context), namespaces,
        liveness=args.liveness, peering=args.peering, priority=args.priority, metrics_port=args.metrics_port)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from httpd_operator.render import render_site
    from httpd_operator.spec import SiteSpec, parse_site

    settings = settings_from(args)
    with (sys.stdin if args.filename == "-" else open(args.filename)) as stream:  # noqa: SIM115
        docs = [d for d in yaml.safe_load_all(stream) if isinstance(d, dict) and d.get("kind") == KIND]
    if not docs:
        print(f"{args.filename}: no {KIND} found", file=sys.stderr)
        return 2
    sites: dict[str, SiteSpec | SpecError] = {}
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("namespace", args.namespace)
        doc["metadata"].setdefault("uid", "00000000-0000-0000-0000-000000000000")
        try:
            sites[doc["metadata"].get("name", "")] = parse_site(doc, settings)
        except SpecError as exc:
            sites[doc["metadata"].get("name", "")] = exc
    objects: list[dict[str, Any]] = []
    failed = 0
    for name, parsed in sites.items():
        try:
            if isinstance(parsed, SpecError):
                raise parsed
            objects.extend(render_site(parsed, sites, settings).objects)
        except SpecError as exc:
            print(f"{KIND} {name}: {exc.reason}: {exc.message}", file=sys.stderr)
            failed += 1
    if objects:
        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from httpd_operator.demo import demo

    return demo(args.examples, settings_from(args), timeout=args.timeout)


def cmd_volumes(args: argparse.Namespace) -> int:
    from httpd_operator.kube import load_configuration
    from httpd_operator.volumes_cli import list_volumes, prune_volumes

    configuration = load_configuration(args.kubeconfig, args.context)
    namespace = None if args.all_namespaces else args.namespace
    if args.action == "list":
        return list_volumes(configuration, namespace)
    return prune_volumes(configuration, namespace, assume_yes=args.yes)


def cmd_backup(args: argparse.Namespace) -> int:
    from httpd_operator.backup_cli import backup_now
    from httpd_operator.kube import load_configuration

    return backup_now(load_configuration(args.kubeconfig, args.context), args.namespace, args.site)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="httpd-operator", description=__doc__)
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = root.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch NS (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    run.add_argument("--kubeconfig", default=None)
    run.add_argument("--context", default=None)
    run.add_argument("--liveness", default=None, metavar="URL",
                     help="serve a liveness probe, e.g. http://0.0.0.0:8081/healthz")
    run.add_argument("--peering", default=None, metavar="NAME",
                     help="coordinate with other replicas through this kopf peering object")
    run.add_argument("--priority", type=int, default=None,
                     help="peering priority (the highest acts; default: random, so exactly one acts)")
    run.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                     help="serve Prometheus metrics on this port")
    run.add_argument("-v", "--verbose", action="store_true")
    _policy_options(run)
    run.set_defaults(func=cmd_run)

    render = sub.add_parser("render", help="print, offline, every object a site would get")
    render.add_argument("-f", "--filename", required=True, help="a YAML file of HttpdSites, or - for stdin")
    render.add_argument("-n", "--namespace", default="default", help="namespace for sites that name none")
    _policy_options(render)
    render.set_defaults(func=cmd_render)

    demo = sub.add_parser("demo", help="run the real operator against an emulated API server (no cluster)")
    demo.add_argument("--examples", default=None, help="folder of HttpdSite YAML (default: examples/)")
    demo.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the sites")
    _policy_options(demo)
    demo.set_defaults(func=cmd_demo)

    volumes = sub.add_parser("volumes", help="retained content volumes (like docker volume ls / prune)")
    volumes.add_argument("action", choices=["list", "prune"])
    vscope = volumes.add_mutually_exclusive_group()
    vscope.add_argument("-n", "--namespace", default="default")
    vscope.add_argument("-A", "--all-namespaces", action="store_true")
    volumes.add_argument("--kubeconfig", default=None)
    volumes.add_argument("--context", default=None)
    volumes.add_argument("--yes", action="store_true", help="prune without asking")
    volumes.set_defaults(func=cmd_volumes)

    backup = sub.add_parser("backup", help="back a site's volume up now (a Job from its backup CronJob)")
    backup.add_argument("action", choices=["now"])
    backup.add_argument("site")
    backup.add_argument("-n", "--namespace", default="default")
    backup.add_argument("--kubeconfig", default=None)
    backup.add_argument("--context", default=None)
    backup.set_defaults(func=cmd_backup)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)
