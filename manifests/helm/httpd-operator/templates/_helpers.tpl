{{/* The chart's name. */}}
{{- define "httpd-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release name, prefixed with the chart's name unless it contains it. */}}
{{- define "httpd-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "httpd-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "httpd-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "httpd-operator.labels" -}}
{{ include "httpd-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "httpd-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "httpd-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the operator gets one ClusterRole for everything, "" when it gets a Role in each
watched namespace. rbac.clusterWide null (the default) follows watchNamespaces.
*/}}
{{- define "httpd-operator.rbacClusterWide" -}}
{{- if kindIs "bool" .Values.rbac.clusterWide -}}
{{- if and (not .Values.rbac.clusterWide) (not .Values.watchNamespaces) -}}
{{- fail "rbac.clusterWide=false needs watchNamespaces: the namespaces to grant a Role in (an operator watching every namespace needs a ClusterRole)" -}}
{{- end -}}
{{- if .Values.rbac.clusterWide }}true{{ end -}}
{{- else if not .Values.watchNamespaces -}}
true
{{- end -}}
{{- end -}}

{{/*
RBAC rules for the namespaced resources: the same as manifests/rbac.yaml, whose comments explain
them (tests/test_helm.py checks that they agree). `get` on children serves one path only:
recovering from a create whose answer was lost (409). The operator never deletes anything.
Peering rules are added where they are used.
*/}}
{{- define "httpd-operator.namespacedRules" -}}
- apiGroups: [httpd.dev]
  resources: [httpdsites]
  verbs: [list, watch]
- apiGroups: [httpd.dev]
  resources: [httpdsites/status]
  verbs: [patch]
# Owner references with blockOwnerDeletion need update on the owner's finalizers.
- apiGroups: [httpd.dev]
  resources: [httpdsites/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
# delete: only a site's git writer (<site>-content), once spec.content.git is dropped.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# Optional children, each deleted when the spec no longer asks for it (ConfigMap: spec.httpd;
# Ingress; HorizontalPodAutoscaler: spec.autoscaling; CronJob: spec.backup).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
{{- if .Values.networkPolicy.sites }}
# spec.networkPolicy (networkPolicy.sites: false passes --no-network-policies and drops this).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
{{- end }}
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, patch, delete]
# Only where the Prometheus operator is installed (spec.metrics.enabled).
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, watch, create, patch, delete]
# Backup Jobs (status.backup), and their pods' termination message (the archive's name and size).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# The git writer's last sync (one JSON line of its log: status.content, ContentSynced).
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* Rules for the cluster-scoped resources, which only a ClusterRole can grant. */}}
{{- define "httpd-operator.clusterScopedRules" -}}
# kopf discovers resources and follows CRD changes.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.protectVolumes }}
# Only to set a bound volume's reclaim policy to Retain (protectVolumes: false drops it).
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, patch]
{{- end }}
# The PersistentVolume of an NFS site, naming its export (Retain). Never delete.
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [create]
{{- end -}}

{{/* kopf peering: a ClusterKopfPeering when watching every namespace, else a KopfPeering in each. */}}
{{- define "httpd-operator.peeringRule" -}}
# Peering: several replicas, one active (kopf); the operator creates the object if it is missing.
- apiGroups: [kopf.dev]
  resources: [{{ if .Values.watchNamespaces }}kopfpeerings{{ else }}clusterkopfpeerings{{ end }}]
  verbs: [list, watch, patch, create]
{{- end -}}
