"""`httpd-operator backup now SITE`: a one-off backup Job from the site's CronJob, as
`kubectl create job --from=cronjob/SITE` does. The operator reports it in status.backup like a
scheduled run (the Job carries the same labels)."""

from __future__ import annotations

import datetime
import sys

from httpd_operator.connection import Cluster
from httpd_operator.kube import ApiError, Kube, discover_versions, path


def backup_now(configuration: Cluster, namespace: str, site: str,
               now: datetime.datetime | None = None) -> int:
    kube = Kube(configuration)
    version = dict(discover_versions(kube))["CronJob"]
    try:
        cron = kube._call("GET", path("CronJob", namespace, site, api_version=version))
    except ApiError as exc:
        if exc.status != 404:
            raise
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
    created = kube._call("POST", path("Job", namespace), body=job)
    name = created["metadata"]["name"]
    print(f"job.batch/{name} created; follow it with: kubectl -n {namespace} logs -f job/{name}")
    return 0
