{{- define "qcc.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qcc.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qcc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "qcc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "qcc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qcc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qcc.secretName" -}}
{{- default (include "qcc.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "qcc.hasSecrets" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.qdrantApiKey .Values.secrets.kafkaSaslPassword -}}true{{- end -}}
{{- end -}}
