"""`httpd-operator backup now SITE`: a one-off backup Job from the site's CronJob, as
`kubectl create job --from=cronjob/SITE` does. The operator reports it in status.backup like a
scheduled run (the Job carries the same labels)."""

from __future__ import annotations

import datetime
import sys

from httpd_operator.connection import Cluster
from httpd_operator.kube import Kube, discover_versions, oneshot


def backup_now(configuration: Cluster, namespace: str, site: str,
               now: datetime.datetime | None = None) -> int:
    return oneshot(configuration, lambda kube: _backup_now(kube, namespace, site, now))


async def _backup_now(kube: Kube, namespace: str, site: str, now: datetime.datetime | None) -> int:
    version = dict(await discover_versions(kube))["CronJob"]
    cron = await kube.get("CronJob", namespace, site, api_version=version)
    if cron is None:
        print(f"site {namespace}/{site} has no backup CronJob: set spec.backup.target.claimName first",
              file=sys.stderr)
        return 1
    stamp = (now or datetime.datetime.now(tz=datetime.UTC)).strftime("%Y%m%d%H%M%S")
    template = cron["spec"]["jobTemplate"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{site}-manual-{stamp}"[:63].rstrip("-"),
            "namespace": namespace,
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": version, "kind": "CronJob", "name": site,
                                 "uid": cron["metadata"]["uid"], "controller": True}],
        },
        "spec": template["spec"],
    }
    created = await kube.create(job)
    name = created["metadata"]["name"]
    print(f"job.batch/{name} created; follow it with: kubectl -n {namespace} logs -f job/{name}")
    return 0
