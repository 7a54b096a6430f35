{{/* Chart name, overridable with nameOverride. */}}
{{- define "sealed-secrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Object name of the controller's Deployment, Services, ServiceAccount, ... The chart default
(fullnameOverride: sealed-secrets-controller) is what kubeseal looks for with its defaults;
with fullnameOverride "" the name is derived from the release as in upstream's chart.
*/}}
{{- define "sealed-secrets.fullname" -}}
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

{{- define "sealed-secrets.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "sealed-secrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealed-secrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sealed-secrets.labels" -}}
{{ include "sealed-secrets.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sealed-secrets-rs
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
metadata.annotations of an object: commonAnnotations merged with the given extra map, with its
own leading newline at metadata indentation, and nothing at all when both are empty. Call as
`{{- include "sealed-secrets.annotations" (dict "context" . "extra" MAP) }}` right after labels.
*/}}
{{- define "sealed-secrets.annotations" -}}
{{- $all := merge (dict) (.extra | default dict) (.context.Values.commonAnnotations | default dict) -}}
{{- if $all }}
  annotations:
    {{- toYaml $all | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "sealed-secrets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sealed-secrets.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sealed-secrets.leaseName" -}}
{{- default (include "sealed-secrets.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "sealed-secrets.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* k=v,k2=v2 from a map, sorted, as --privatekey-labels/--privatekey-annotations expect. */}}
{{- define "sealed-secrets.kvList" -}}
{{- $items := list -}}
{{- range $k, $v := . -}}
{{- $items = append $items (printf "%s=%s" $k (toString $v)) -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}

{{/* The controller's rules, shared by the ClusterRole and the namespaced Roles. */}}
{{- define "sealed-secrets.unsealerRules" -}}
- apiGroups: ["bitnami.com"]
  resources: ["sealedsecrets"]
  verbs: ["get", "list", "watch"]
# Status is written with a full PUT of the status subresource (upstream §4.8).
- apiGroups: ["bitnami.com"]
  resources: ["sealedsecrets/status"]
  verbs: ["update"]
# The controller watches and caches only the Secrets it owns (owner reference / its own
# annotation) and the key Secrets, but Kubernetes RBAC cannot scope list/watch/create to
# "Secrets owned by a SealedSecret", so these verbs cover all Secrets of the namespace(s).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
# Core v1 Events, each created under a new name: no patch, no events.k8s.io.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.sharding.enabled }}
# Sharding: the leader sets the shard and drain labels, a member removes them when drained
# (a merge patch of metadata.labels; RBAC cannot narrow patch to labels).
- apiGroups: ["bitnami.com"]
  resources: ["sealedsecrets"]
  verbs: ["patch"]
{{- end }}
{{- end -}}

{{/*
A port number from a value that may be an integer or a string ("8080"); refuses anything else
so a typo cannot render an invalid Pod.
*/}}
{{- define "sealed-secrets.port" -}}
{{- $p := toString . -}}
{{- if not (regexMatch "^[0-9]{1,5}$" $p) -}}
{{- fail (printf "port %q is not a number (containerPorts.* and hostPorts.* take 1-65535)" $p) -}}
{{- end -}}
{{- if or (lt (int $p) 1) (gt (int $p) 65535) -}}
{{- fail (printf "port %s is out of range 1-65535 (containerPorts.*, hostPorts.*)" $p) -}}
{{- end -}}
{{- int $p -}}
{{- end -}}

{{/*
RoleBinding subjects: a list, or a YAML string rendered with tpl as upstream's chart does
(its values.yaml ships rbac.serviceProxier.subjects as a block string).
*/}}
{{- define "sealed-secrets.subjects" -}}
{{- if kindIs "string" .subjects -}}
{{- tpl .subjects .context -}}
{{- else -}}
{{- toYaml .subjects -}}
{{- end -}}
{{- end -}}
