"""httpd-operator: run the operator, render a site offline, or try it all in an emulated cluster."""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from httpd_operator import KIND, __version__
from httpd_operator.cli_errors import BUG, OK, REFUSED, USAGE, UserError, from_api_error, from_config_error
from httpd_operator.connection import Cluster, ConfigError
from httpd_operator.errors import SpecError
from httpd_operator.settings import DEFAULT_IMAGE, DEFAULT_RESOURCES, EXPORTER_IMAGE, GIT_IMAGE, Settings


def _policy_options(parser: argparse.ArgumentParser) -> None:
    """Options that change what sites get; shared by `run` and `render` so both agree."""
    env_paths = [p for p in os.environ.get("HTTPD_OPERATOR_ALLOW_HOST_PATHS", "").split(":") if p]
    parser.add_argument("--default-image", default=os.environ.get("HTTPD_OPERATOR_DEFAULT_IMAGE", DEFAULT_IMAGE),
                        help="image for sites that name none (default: %(default)s)")
    parser.add_argument("--exporter-image",
                        default=os.environ.get("HTTPD_OPERATOR_EXPORTER_IMAGE", EXPORTER_IMAGE),
                        help="metrics sidecar of sites with spec.metrics.enabled (default: %(default)s)")
    parser.add_argument("--git-image", default=os.environ.get("HTTPD_OPERATOR_GIT_IMAGE", GIT_IMAGE),
                        help="content writer of sites with spec.content.git (default: %(default)s)")
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
            raise UserError(f"--allow-host-path {prefix!r}: must be an absolute path without '..'")
        prefixes.append(os.path.normpath(prefix))
    return Settings(default_image=args.default_image, exporter_image=args.exporter_image,
                    git_image=args.git_image,
                    allowed_host_paths=tuple(prefixes),
                    protect_volumes=not args.no_protect_volumes,
                    default_resources=default_resources(args.default_resources),
                    network_policies=not args.no_network_policies,
                    metrics_namespaces=metrics_namespaces(args.metrics_namespace))


def _cluster(args: argparse.Namespace) -> Cluster:
    """The cluster the options name; kept on `args` so that an API error can name it."""
    from httpd_operator.kube import load_configuration

    try:
        args.cluster = load_configuration(args.kubeconfig, args.context)
    except ConfigError as exc:
        raise from_config_error(exc) from None
    return args.cluster


def cmd_run(args: argparse.Namespace) -> int:
    # kopf imports the `kubernetes` client whenever it can (for its optional login through it);
    # the operator logs in by itself (connection.py), so the long-running process is spared its
    # 22 MiB of generated models. Nothing below needs it.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from httpd_operator.kube import oneshot
    from httpd_operator.runner import reachable, run

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # kopf logs every handler call at INFO: costly at scale, and noise
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = [] if args.all_namespaces else args.namespace
    settings, cluster = settings_from(args), _cluster(args)
    if not oneshot(cluster, reachable, timeout=10.0):
        logging.getLogger("httpd_operator.runner").info("stopped before the API server answered")
        return OK
    run(settings, cluster, namespaces,
        liveness=args.liveness, peering=args.peering, priority=args.priority, metrics_port=args.metrics_port)
    return OK


def cmd_render(args: argparse.Namespace) -> int:
    from httpd_operator.inputs import read, sites
    from httpd_operator.render import render_site
    from httpd_operator.spec import SiteSpec, parse_site

    settings = settings_from(args)
    documents = read(args.filename, recursive=args.recursive)
    for doc in documents:
        if doc.body.get("kind") == KIND:
            meta = doc.body.setdefault("metadata", {})
            if isinstance(meta, dict):
                meta.setdefault("namespace", args.namespace)
                meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    found, warnings = sites(documents, _crd_schema())
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not found:
        raise UserError(f"no {KIND} found in {', '.join(args.filename)}")
    parsed: dict[tuple[str, str], SiteSpec | SpecError] = {}
    for doc in found:
        try:
            parsed[doc.key] = parse_site(doc.body, settings)
        except SpecError as exc:
            parsed[doc.key] = exc
    objects: list[dict[str, Any]] = []
    failed = 0
    for (namespace, name), site in parsed.items():
        neighbours = {n: s for (ns, n), s in parsed.items() if ns == namespace}
        try:
            if isinstance(site, SpecError):
                raise site
            objects.extend(render_site(site, neighbours, settings).objects)
        except SpecError as exc:
            print(f"{KIND} {namespace}/{name}: {exc.reason}: {exc.message}", file=sys.stderr)
            failed += 1
    if objects:
        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return REFUSED if failed else OK


def _crd_schema() -> dict[str, Any] | None:
    """The CRD's schema, to warn of fields the API server would drop (None outside a checkout)."""
    path = pathlib.Path(__file__).resolve().parents[2] / "crds" / "httpdsites.yaml"
    if not path.exists():
        return None
    crd = yaml.safe_load(path.read_text())
    return next((v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v.get("storage")), None)


def cmd_demo(args: argparse.Namespace) -> int:
    from httpd_operator.demo import demo

    return demo(args.examples, settings_from(args), timeout=args.timeout)


def cmd_volumes_list(args: argparse.Namespace) -> int:
    from httpd_operator.volumes_cli import list_volumes

    return list_volumes(_cluster(args), None if args.all_namespaces else args.namespace)


def cmd_volumes_prune(args: argparse.Namespace) -> int:
    from httpd_operator.volumes_cli import prune_volumes

    return prune_volumes(_cluster(args), None if args.all_namespaces else args.namespace, assume_yes=args.yes)


def cmd_backup_now(args: argparse.Namespace) -> int:
    from httpd_operator.backup_cli import backup_now

    return backup_now(_cluster(args), args.namespace, args.site)


EPILOG = """exit codes: 0 done; 1 a site was refused (or the server refused a request); 2 bad usage or
input; 3 the cluster cannot be reached or logged in to. --debug shows a traceback with any error."""


def _common(debug: bool = False) -> argparse.ArgumentParser:
    """--debug, accepted before or after the sub-command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=False if debug else argparse.SUPPRESS,
                        help="show the Python traceback of an error")
    return common


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=None, metavar="FILE",
                        help="kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config, then the "
                             "pod's service account)")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: its current-context)")


def _add(sub: Any, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description or help[0].upper() + help[1:] + ".",
                          parents=[_common()], epilog=EPILOG)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="httpd-operator", description=__doc__, parents=[_common(debug=True)],
                                   epilog=EPILOG)
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _add(sub, "run", "run the operator against the current kubeconfig or in-cluster config",
               "Run the operator until SIGTERM or Ctrl-C. Until the API server answers, one line per "
               "try says why and when the next one is.")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="watch NS only (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    _cluster_options(run)
    run.add_argument("--liveness", default=None, metavar="URL",
                     help="serve a liveness probe, e.g. http://0.0.0.0:8081/healthz")
    run.add_argument("--peering", default=None, metavar="NAME",
                     help="coordinate with other replicas through this kopf peering object")
    run.add_argument("--priority", type=int, default=None,
                     help="peering priority (the highest acts; default: random, so exactly one acts)")
    run.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                     help="serve Prometheus metrics on this port")
    run.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG, and every handler call")
    _policy_options(run)
    run.set_defaults(func=cmd_run)

    render = _add(sub, "render", "print, offline, every object a site would get",
                  "Print, offline, the YAML of every object the HttpdSites in the files would get. Other "
                  "kinds in the files are skipped; unknown fields, a wrong apiVersion and duplicates are "
                  "warned of on stderr.")
    render.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                        help="a YAML or JSON file, a directory of them, or - for stdin (repeatable)")
    render.add_argument("-R", "--recursive", action="store_true", help="read directories given to -f recursively")
    render.add_argument("-n", "--namespace", default="default", help="namespace for sites that name none")
    _policy_options(render)
    render.set_defaults(func=cmd_render)

    demo = _add(sub, "demo", "run the real operator against an emulated API server (no cluster)")
    demo.add_argument("--examples", default=None, metavar="DIR",
                      help="folder of HttpdSite YAML (default: the checkout's examples/)")
    demo.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                      help="seconds to wait for the sites to settle (default: %(default)s)")
    _policy_options(demo)
    demo.set_defaults(func=cmd_demo)

    volumes = _add(sub, "volumes", "retained content volumes (like docker volume ls / prune)")
    vsub = volumes.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, helptext, func in (
            ("list", "list the claims the operator made, and whether a site uses them", cmd_volumes_list),
            ("prune", "delete retained claims no site uses, after showing them and asking", cmd_volumes_prune)):
        cmd = _add(vsub, action, helptext)
        vscope = cmd.add_mutually_exclusive_group()
        vscope.add_argument("-n", "--namespace", default="default", metavar="NS",
                            help="namespace (default: %(default)s)")
        vscope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
        _cluster_options(cmd)
        if action == "prune":
            cmd.add_argument("-y", "--yes", action="store_true", help="delete without asking")
        cmd.set_defaults(func=func)

    backup = _add(sub, "backup", "back a site's volume up")
    bsub = backup.add_subparsers(dest="action", required=True, metavar="ACTION")
    now = _add(bsub, "now", "run a backup Job now, from the site's backup CronJob",
               "Run a backup Job now from the site's backup CronJob (as kubectl create job "
               "--from=cronjob/SITE does); status.backup reports it like a scheduled run.")
    now.add_argument("site", metavar="SITE", help="the HttpdSite's name")
    now.add_argument("-n", "--namespace", default="default", metavar="NS", help="its namespace (default: %(default)s)")
    _cluster_options(now)
    now.set_defaults(func=cmd_backup_now)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from httpd_operator.inputs import InputError
    from httpd_operator.kube import ApiError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `render ... | head`
        sys.stderr.close()
        return OK
    except (UserError, InputError, ApiError, ConfigError) as exc:
        if args.debug:
            raise
        if isinstance(exc, ApiError):
            exc = from_api_error(exc, getattr(args, "cluster", None))
        elif isinstance(exc, ConfigError):
            exc = from_config_error(exc)
        for line in str(exc).splitlines():
            print(f"httpd-operator: {line}", file=sys.stderr)
        return exc.code if isinstance(exc, UserError) else USAGE
    except Exception as exc:
        if args.debug:
            raise
        print(f"httpd-operator: internal error: {type(exc).__name__}: {exc} "
              "(a bug: please report it with the output of --debug)", file=sys.stderr)
        return BUG
