"""Smoke tests: the parts of a real control plane that the project relies on, each one checked
by behaviour that would fail without it (see hack/control-plane)."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

DEADLINE = 60.0  # seconds, for anything a controller has to do


def _exists(read, *args) -> bool:
    try:
        read(*args)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def test_apiserver_is_1_20_2(api_client):
    info = client.VersionApi(api_client).get_code()
    assert info.git_version == "v1.20.2"
    assert (info.major, info.minor) == ("1", "20")


def test_default_storage_class_binds_claims(api_client, namespace, control_plane, wait_until):
    core = client.CoreV1Api(api_client)
    storage = client.StorageV1Api(api_client)
    sc = storage.read_storage_class("standard")
    assert sc.provisioner == "kubernetes.io/host-path"
    assert sc.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"

    claim = core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="content"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    ))
    # No storageClassName given: the DefaultStorageClass admission plugin fills it in.
    assert claim.spec.storage_class_name == "standard"

    def bound():
        c = core.read_namespaced_persistent_volume_claim("content", namespace)
        return c if c.status.phase == "Bound" else None

    claim = wait_until(bound, DEADLINE, "the claim to become Bound")
    assert claim.status.capacity["storage"] == "1Gi"
    pv = core.read_persistent_volume(claim.spec.volume_name)
    assert pv.spec.claim_ref.name == "content" and pv.spec.claim_ref.namespace == namespace
    assert pv.spec.storage_class_name == "standard"
    # The provisioner made the directory in the controller-manager's private /tmp, which is
    # the scratch dir's kcm-tmp on the host, not the host's /tmp.
    path = pv.spec.host_path.path
    assert path.startswith("/tmp/hostpath_pv/")
    assert (control_plane.scratch / "kcm-tmp" / path.removeprefix("/tmp/")).is_dir()


def test_deployment_creates_replicaset_and_pods(api_client, namespace, wait_until):
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    labels = {"app": "smoke"}
    dep = apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    automount_service_account_token=False,
                    containers=[client.V1Container(name="web", image="registry.invalid/none:1")],
                ),
            ),
        ),
    ))

    def owned_by(obj, owner) -> bool:
        return any(r.uid == owner.metadata.uid and r.controller
                   for r in obj.metadata.owner_references or [])

    rs = wait_until(
        lambda: [r for r in apps.list_namespaced_replica_set(namespace).items if owned_by(r, dep)],
        DEADLINE, "the Deployment's ReplicaSet")
    assert len(rs) == 1
    pods = wait_until(
        lambda: (lambda p: p if len(p) == 2 else None)(
            [p for p in core.list_namespaced_pod(namespace).items if owned_by(p, rs[0])]),
        DEADLINE, "the ReplicaSet's two Pods")
    # No kubelet, no node: the Pods exist but stay Pending and unscheduled.
    for p in pods:
        assert p.status.phase == "Pending"
        assert not p.spec.node_name


def test_garbage_collection_by_owner_references(api_client, namespace, wait_until):
    core = client.CoreV1Api(api_client)

    def cm(name, owner=None):
        refs = None
        if owner is not None:
            refs = [client.V1OwnerReference(api_version="v1", kind="ConfigMap",
                                            name=owner.metadata.name, uid=owner.metadata.uid)]
        return core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, owner_references=refs), data={"k": "v"}))

    owner = cm("owner")
    cm("owned", owner)
    cm("unowned")
    core.delete_namespaced_config_map("owner", namespace)

    wait_until(lambda: not _exists(core.read_namespaced_config_map, "owned", namespace),
               DEADLINE, "the garbage collector to delete the owned ConfigMap")
    assert _exists(core.read_namespaced_config_map, "unowned", namespace)
    assert not _exists(core.read_namespaced_config_map, "owner", namespace)


@pytest.fixture
def widget_crd(api_client, wait_until):
    ext = client.ApiextensionsV1Api(api_client)
    group = f"{uuid.uuid4().hex[:8]}.smoke.httpd-operator.test"
    name = f"widgets.{group}"
    ext.create_custom_resource_definition(client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group,
            scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(
                plural="widgets", singular="widget", kind="Widget", list_kind="WidgetList"),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                subresources=client.V1CustomResourceSubresources(status={}),
                schema=client.V1CustomResourceValidation(open_apiv3_schema={
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                "color": {"type": "string", "default": "blue",
                                          "enum": ["blue", "red"]},
                            },
                        },
                        "status": {"type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True},
                    },
                }),
            )],
        ),
    ))

    def established():
        crd = ext.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True"
                   for c in crd.status.conditions or [])

    try:
        wait_until(established, DEADLINE, f"CRD {name} to be Established")
        yield group
    finally:
        ext.delete_custom_resource_definition(name)


def test_crd_schema_validation_and_defaults(api_client, namespace, widget_crd, wait_until):
    custom = client.CustomObjectsApi(api_client)

    def widget(name, spec):
        return {"apiVersion": f"{widget_crd}/v1", "kind": "Widget",
                "metadata": {"name": name}, "spec": spec}

    def create(body):
        return custom.create_namespaced_custom_object(widget_crd, "v1", namespace, "widgets", body)

    # The new resource can take a moment to be served after Established: 404 until then.
    def first_create():
        try:
            return create(widget("good", {"size": 3}))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    good = wait_until(first_create, DEADLINE, "the Widget resource to be served")
    assert good["spec"] == {"size": 3, "color": "blue"}  # default applied by the server

    with pytest.raises(ApiException) as err:
        create(widget("bad", {"size": 11, "color": "green"}))
    assert err.value.status == 422
    assert "spec.size" in err.value.body
    assert "spec.color" in err.value.body
    with pytest.raises(ApiException) as err:
        create(widget("missing", {"color": "red"}))
    assert err.value.status == 422
    assert "spec.size" in err.value.body and "Required" in err.value.body

    stored = custom.get_namespaced_custom_object(widget_crd, "v1", namespace, "widgets", "good")
    assert stored["spec"]["color"] == "blue"


def test_audit_log_records_admin_create(api_client, namespace, audit_log):
    core = client.CoreV1Api(api_client)
    mark = audit_log.mark()
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="audited"), data={"k": "v"}))
    entries = audit_log.wait_for(user="admin", verb="create", resource="configmaps",
                                 namespace=namespace, since=mark)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["objectRef"]["name"] == "audited"
    assert entry["responseStatus"]["code"] == 201
    assert "system:masters" in entry["user"]["groups"]
    assert entry["level"] == "Metadata" and "requestObject" not in entry
    # Other users are recorded under their own names: the controller-manager runs each
    # controller with its own ServiceAccount (--use-service-account-credentials), and the
    # root-CA publisher creates kube-root-ca.crt in every new namespace.
    publisher = "system:serviceaccount:kube-system:root-ca-cert-publisher"
    published = audit_log.wait_for(user=publisher, verb="create", resource="configmaps",
                                   namespace=namespace)
    assert [e["objectRef"]["name"] for e in published] == ["kube-root-ca.crt"]
    by_admin = audit_log.entries(user="admin", verb="create", resource="configmaps",
                                 namespace=namespace)
    assert [e["objectRef"]["name"] for e in by_admin] == ["audited"]


def test_service_account_token_and_rbac(api_client, namespace, control_plane, audit_log,
                                        wait_until, tmp_path):
    rbac = client.RbacAuthorizationV1Api(api_client)
    # Kubernetes 1.20's token controller makes a token Secret for every ServiceAccount.
    sa_token = control_plane.service_account_token(api_client, namespace, "probe")
    sa_kubeconfig = control_plane.kubeconfig_for_token(sa_token, tmp_path / "probe.kubeconfig")
    user = f"system:serviceaccount:{namespace}:probe"
    with config.new_client_from_config(config_file=str(sa_kubeconfig)) as sa_client:
        sa_core = client.CoreV1Api(sa_client)
        # Authenticated (not 401) as the ServiceAccount, and denied: nothing is granted.
        with pytest.raises(ApiException) as err:
            sa_core.list_namespaced_config_map(namespace)
        assert err.value.status == 403
        assert user in err.value.body
        audit_log.wait_for(user=user, verb="list", resource="configmaps", namespace=namespace,
                           where=lambda e: e["responseStatus"]["code"] == 403)

        rbac.create_namespaced_role(namespace, client.V1Role(
            metadata=client.V1ObjectMeta(name="read-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"],
                                       verbs=["get", "list"])]))
        rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="probe-reads-configmaps"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                      name="read-configmaps"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="probe",
                                           namespace=namespace)]))

        def can_list():
            try:
                sa_core.list_namespaced_config_map(namespace)
                return True
            except ApiException as e:
                if e.status == 403:
                    return False
                raise

        wait_until(can_list, DEADLINE, "the RoleBinding to take effect")
        # What the Role grants is allowed; what it does not is still denied.
        with pytest.raises(ApiException) as err:
            sa_core.create_namespaced_config_map(namespace, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="nope")))
        assert err.value.status == 403
        with pytest.raises(ApiException) as err:
            sa_core.list_namespaced_secret(namespace)
        assert err.value.status == 403

    # A token that is not a real one is rejected outright.
    bad_kubeconfig = control_plane.kubeconfig_for_token("not-a-token", tmp_path / "bad")
    with config.new_client_from_config(config_file=str(bad_kubeconfig)) as bad_client, \
            pytest.raises(ApiException) as err:
        client.CoreV1Api(bad_client).list_namespaced_config_map(namespace)
    assert err.value.status == 401
