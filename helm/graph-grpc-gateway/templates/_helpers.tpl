{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "ggg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already holds the chart name. */}}
{{- define "ggg.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ggg.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "ggg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ggg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "ggg.labels" -}}
helm.sh/chart: {{ include "ggg.chart" . }}
{{ include "ggg.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ggg.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ggg.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ggg.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The auth mode in use; none with the emulator. */}}
{{- define "ggg.authMode" -}}
{{- if .Values.emulator.enabled }}none{{ else }}{{ .Values.graph.auth.mode }}{{ end }}
{{- end }}

{{/* The Secret holding the client secret, for the secret modes. */}}
{{- define "ggg.clientSecretName" -}}
{{- if eq (include "ggg.authMode" .) "existingSecret" }}
{{- .Values.graph.auth.existingSecret.name }}
{{- else }}
{{- include "ggg.fullname" . }}
{{- end }}
{{- end }}

{{- define "ggg.clientSecretKey" -}}
{{- if eq (include "ggg.authMode" .) "existingSecret" }}
{{- .Values.graph.auth.existingSecret.key }}
{{- else }}client-secret{{ end }}
{{- end }}

{{/* Replicas that run when nothing scales them. */}}
{{- define "ggg.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* Where the gRPC certificate and key are mounted (a directory: renewals reach the pod). */}}
{{- define "ggg.tlsDir" -}}/var/run/secrets/graph-grpc-gateway/tls{{- end }}

{{/* Where the client CA bundle is mounted (a directory: a new bundle reaches the pod). */}}
{{- define "ggg.clientCaDir" -}}/etc/graph-grpc-gateway/client-ca{{- end }}

{{/* Where the caller policy is mounted. */}}
{{- define "ggg.policyDir" -}}/etc/graph-grpc-gateway/policy{{- end }}

{{/* "true" when client certificates are asked for (a client CA is configured, with TLS on). */}}
{{- define "ggg.mtls" -}}
{{- if and .Values.tls.enabled (or .Values.tls.clientCa.existingSecret .Values.tls.clientCa.existingConfigMap) }}true{{ end }}
{{- end }}

{{/* Where the caller policy comes from: inline, existingConfigMap or none. */}}
{{- define "ggg.policySource" -}}
{{- if .Values.policy.inline }}inline{{ else if .Values.policy.existingConfigMap }}existingConfigMap{{ else }}none{{ end }}
{{- end }}

{{/* The ConfigMap holding the caller policy: yours, or the chart's for an inline policy. */}}
{{- define "ggg.policyConfigMapName" -}}
{{- if eq (include "ggg.policySource" .) "existingConfigMap" }}
{{- .Values.policy.existingConfigMap }}
{{- else }}
{{- include "ggg.fullname" . | trunc 56 | trimSuffix "-" }}-policy
{{- end }}
{{- end }}

{{/*
"true" when the kubelet's native gRPC probe can be answered: it speaks plaintext
only and presents no identity, so it needs a plaintext port and a health check
open to anonymous callers (no policy, or an inline policy with
[public] health = true). A ConfigMap of your own cannot be read at render time,
so it counts as closed.
*/}}
{{- define "ggg.grpcReadinessProbe" -}}
{{- $source := include "ggg.policySource" . }}
{{- if not .Values.tls.enabled }}
{{- if eq $source "none" }}true
{{- else if eq $source "inline" }}
{{- $public := get (fromToml .Values.policy.inline) "public" }}
{{- if and (kindIs "map" $public) (eq (toString (get $public "health")) "true") }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Milliseconds in a duration value: one or more number-and-unit parts, as the
values schema admits them ("90s", "1m30s", "500ms", "1h", "1.5s"; units ns,
us, µs, ms, s, m, h, d). Fails on anything else, so no form is misread.
*/}}
{{- define "ggg.durationMs" -}}
{{- $text := toString . -}}
{{- $parts := regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h|d)" $text -1 -}}
{{- if or (not $parts) (ne (join "" $parts) $text) -}}
{{- fail (printf "%q is not a duration (such as 90s, 1m30s, 500ms or 1h)" $text) -}}
{{- end -}}
{{- $units := dict "ns" 0.000001 "us" 0.001 "µs" 0.001 "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0 "d" 86400000.0 -}}
{{- $total := 0.0 -}}
{{- range $parts -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $total = addf $total (mulf (float64 $number) (get $units (trimPrefix $number .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
Pods that share Intune's budget (GATEWAY_REPLICAS): the most that can run at
once, so that while Redis does not answer their local shares together stay
inside the budget. The HPA's maximum when it scales the pods, else
replicaCount (at least 1: the gateway needs a share to divide by).
*/}}
{{- define "ggg.budgetReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ max 1 .Values.replicaCount }}{{ end }}
{{- end }}

{{/* Where the Redis password is mounted (a directory, like every Secret here). */}}
{{- define "ggg.budgetRedisDir" -}}/var/run/secrets/graph-grpc-gateway/budget-redis{{- end }}

{{/*
Where the budget's Redis URL comes from: "values" (budget.redis.url, in the
ConfigMap), "secret" (budget.redis.existingSecret, an environment variable
from that Secret) or "none". A URL with a password (redis://:pw@host,
redis://user:pw@host) is refused from values, so that no password lands in
a ConfigMap; the messages never repeat the URL.
*/}}
{{- define "ggg.budgetRedis" -}}
{{- $redis := .Values.budget.redis }}
{{- $secret := $redis.existingSecret }}
{{- if regexMatch "^[a-z]+://[^@]*:[^@]*@" $redis.url }}
{{- fail "budget.redis.url holds a password, and it would land in a ConfigMap, which is not secret. Put the whole URL in a Secret of yours and name it with budget.redis.existingSecret.name (key: budget.redis.existingSecret.urlKey, url by default); or keep the URL here without its password and put the password in that Secret (budget.redis.existingSecret.passwordKey, with urlKey empty)" }}
{{- end }}
{{- if and $secret.passwordKey (not $secret.name) }}
{{- fail "budget.redis.existingSecret.passwordKey needs budget.redis.existingSecret.name, the Secret that holds the password" }}
{{- end }}
{{- if $secret.name }}
{{- if and $redis.url $secret.urlKey }}
{{- fail "the Redis URL is given twice, in budget.redis.url and in the Secret budget.redis.existingSecret.name (key budget.redis.existingSecret.urlKey): leave budget.redis.url empty, or set budget.redis.existingSecret.urlKey to empty to read only the password (passwordKey) from the Secret" }}
{{- end }}
{{- if not (or $redis.url $secret.urlKey) }}
{{- fail "budget.redis.existingSecret.name is set but no Redis URL is: set budget.redis.existingSecret.urlKey (the key of the URL in that Secret) or budget.redis.url" }}
{{- end }}
{{- end }}
{{- if $redis.url }}values{{ else if $secret.name }}secret{{ else }}none{{ end }}
{{- end }}

{{/*
A value percent-encoded for OTEL_RESOURCE_ATTRIBUTES: every byte but
A-Z a-z 0-9 - . _ ~ as %XX. The OpenTelemetry format needs "," and "=" (and
"%") encoded; "$" encoded too keeps Kubernetes from expanding "$(...)" in it.
(urlquery writes a space as "+", and a "+" as "%2B": every "+" left is a space.)
*/}}
{{- define "ggg.percentEncode" -}}
{{- toString . | urlquery | replace "+" "%20" }}
{{- end }}

{{/*
OTEL_RESOURCE_ATTRIBUTES: the pod, its namespace and node (from the
environment variables POD_NAME, POD_NAMESPACE and NODE_NAME, which Kubernetes
expands, so the Deployment defines them first), the Deployment, the version
the image runs, then tracing.resourceAttributes sorted by key.
*/}}
{{- define "ggg.tracingResourceAttributes" -}}
{{- $attributes := list "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.node.name=$(NODE_NAME)" }}
{{- $attributes = append $attributes (printf "k8s.deployment.name=%s" (include "ggg.percentEncode" (include "ggg.fullname" .))) }}
{{- $attributes = append $attributes (printf "service.version=%s" (include "ggg.percentEncode" (default .Chart.AppVersion .Values.image.tag))) }}
{{- range $key := keys .Values.tracing.resourceAttributes | sortAlpha }}
{{- if has $key (list "k8s.pod.name" "k8s.namespace.name" "k8s.node.name" "k8s.deployment.name" "service.version") }}
{{- fail (printf "tracing.resourceAttributes cannot set %s: the chart sets it itself, from the pod and the image" $key) }}
{{- end }}
{{- if eq $key "service.name" }}
{{- fail "tracing.resourceAttributes cannot set service.name: set tracing.serviceName (OTEL_SERVICE_NAME, which would win over it)" }}
{{- end }}
{{- $value := get $.Values.tracing.resourceAttributes $key }}
{{- $attributes = append $attributes (printf "%s=%s" (include "ggg.percentEncode" $key) (include "ggg.percentEncode" $value)) }}
{{- end }}
{{- join "," $attributes }}
{{- end }}

{{/*
The OTLP collector's TCP port, as the exporter connects to it: the port
tracing.otlpEndpoint names, else its scheme's (80 for http, 443 for https).
Fails on an endpoint that is not an http:// or https:// URL.
*/}}
{{- define "ggg.tracingPort" -}}
{{- $url := .Values.tracing.otlpEndpoint }}
{{- $shape := `^(https?)://(\[[0-9A-Fa-f:.]+\]|[^/?#:@\[\]\s]+)(:([0-9]+))?(/[^\s?#]*)?$` }}
{{- if not (regexMatch $shape $url) }}
{{- fail (printf "tracing.otlpEndpoint %q is not an http:// or https:// URL with a host and an optional port" $url) }}
{{- end }}
{{- $port := regexReplaceAll $shape $url "${4}" }}
{{- if not $port }}
{{- $port = ternary "443" "80" (eq (regexReplaceAll $shape $url "${1}") "https") }}
{{- end }}
{{- if or (lt (atoi $port) 1) (gt (atoi $port) 65535) }}
{{- fail (printf "tracing.otlpEndpoint %q names port %s; a port is 1 to 65535" $url $port) }}
{{- end }}
{{- atoi $port }}
{{- end }}
