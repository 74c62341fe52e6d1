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
