{{/* Chart name, truncated to fit DNS labels. */}}
{{- define "paramedic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "paramedic.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "paramedic.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "paramedic.labels" -}}
helm.sh/chart: {{ include "paramedic.chart" . }}
app.kubernetes.io/name: {{ include "paramedic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: paramedic
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "operator"). */}}
{{- define "paramedic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "paramedic.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "paramedic.componentLabels" -}}
{{ include "paramedic.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "paramedic.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "paramedic.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "paramedic.fullname" .)) .Values.serviceAccount.operatorName -}}
{{- end -}}

{{- define "paramedic.webhookServiceAccount" -}}
{{- default (printf "%s-webhook" (include "paramedic.fullname" .)) .Values.serviceAccount.webhookName -}}
{{- end -}}

{{- define "paramedic.tokenSecret" -}}
{{- default (printf "%s-webhook-token" (include "paramedic.fullname" .)) .Values.webhook.existingSecret -}}
{{- end -}}

{{- define "paramedic.tokenKey" -}}
{{- if .Values.webhook.existingSecret -}}{{ .Values.webhook.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{- define "paramedic.notifySecret" -}}
{{- default (printf "%s-notify" (include "paramedic.fullname" .)) .Values.smtp.existingSecret -}}
{{- end -}}

{{/* Namespaces the webhook may write incidents to when not watching all of them. */}}
{{- define "paramedic.webhookNamespaces" -}}
{{- $out := list .Release.Namespace -}}
{{- range .Values.watchNamespaces -}}{{- $out = append $out . -}}{{- end -}}
{{- $out | uniq | toJson -}}
{{- end -}}

{{/*
RBAC rules. Explicit groups, resources and verbs: no wildcards. Split into the
rules on namespaced resources (bound per watched namespace, or cluster-wide) and
those on cluster-scoped ones.
*/}}
{{- define "paramedic.operatorNamespacedRules" -}}
# Paramedic's own resources: read and watched; only their status is written. Incidents
# are created (probe failures), moved on and deleted (retention); `remediate` lets the
# probe incidents it opens be managed (the admission policy checks it).
- apiGroups: [paramedic.dev]
  resources: [monitoredservices]
  verbs: [get, list, watch, remediate]
- apiGroups: [paramedic.dev]
  resources: [oncallschedules]
  verbs: [get, list, watch]
- apiGroups: [paramedic.dev]
  resources: [incidents]
  verbs: [get, list, watch, patch, create, delete]
- apiGroups: [paramedic.dev]
  resources: [monitoredservices/status, incidents/status, oncallschedules/status]
  verbs: [patch]
# Warning Events are read as incident evidence.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, list]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Remediation: rollout restart and rollback (patches of the pod template), the built-in
# scale (a patch of spec.replicas) and rollout status (get), on the kinds in rbac.workloads.
- apiGroups: [apps]
  resources: {{ .Values.rbac.workloads | uniq | toJson }}
  verbs: [get, patch]
{{- $scalable := without (.Values.rbac.workloads | uniq) "daemonsets" }}
{{- if $scalable }}
# The scale playbook (kubernetes.core.k8s_scale) writes the scale subresource.
- apiGroups: [apps]
  resources: [{{ range $i, $r := $scalable }}{{ if $i }}, {{ end }}{{ $r }}/scale{{ end }}]
  verbs: [patch]
{{- end }}
# Revisions: what changed (evidence) and what a rollback returns to.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [list]
# Pods of the target: incident evidence (restarts, terminations, readiness).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Incident evidence, only for services that ask for it (spec.evidence.logs).
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end -}}

{{/* In the release namespace only: the Secret holding the key that seals remediation attempts
(paramedic/seal_io.py), read by name and created when missing (create cannot be limited to a name). */}}
{{- define "paramedic.operatorSealRules" -}}
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [paramedic-remediation-seal]
  verbs: [get]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
{{- end -}}

{{/* In the release namespace only: the Leases the replicas share the shards through
(paramedic-shard-<i>, paramedic-member-<id>; operator/shards.py). */}}
{{- define "paramedic.operatorLeaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, create, patch, delete]
{{- end -}}

{{/* Spread a component's replicas over nodes where the scheduler can, never refusing one node:
include with (dict "ctx" $ "component" "operator" "values" $o). */}}
{{- define "paramedic.topologySpread" -}}
{{- if .values.topologySpreadConstraints }}
{{- toYaml .values.topologySpreadConstraints }}
{{- else }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "paramedic.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "paramedic.operatorClusterRules" -}}
# Incident evidence: the conditions of the nodes running a target's pods.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get]
# Kopf: namespaces (cluster-wide watching) and its resources' definitions.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end -}}

{{- define "paramedic.webhookNamespacedRules" -}}
# It creates incidents and records alerts in their status; their state is the operator's
# (and people's) to write, so no patch of the incident itself.
- apiGroups: [paramedic.dev]
  resources: [incidents]
  verbs: [get, list, create]
- apiGroups: [paramedic.dev]
  resources: [incidents/status]
  verbs: [patch]
# Routing reads MonitoredServices from a watch-fed cache per namespace; an alert matching
# one opens a managed incident, which needs `remediate` on it (the admission policy checks it).
- apiGroups: [paramedic.dev]
  resources: [monitoredservices]
  verbs: [get, list, watch, remediate]
# Routing an alert that names only a pod: which workload owns it (pod → ReplicaSet →
# Deployment), read in the alert's own namespace, cached. Never list, never write.
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get]
{{- end -}}

{{- define "paramedic.webhookClusterRules" -}}
# Does the alert's namespace exist? (Otherwise the incident lands in Paramedic's own.)
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get]
{{- end -}}
