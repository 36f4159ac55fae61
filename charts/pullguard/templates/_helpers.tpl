{{/* The image: repository plus digest or tag; rendering fails, saying how to name one, without them. */}}
{{- define "pullguard.image" -}}
{{- $hint := "name the image you pushed (make push IMAGE=host/repo:tag): --set image.repository=host/repo --set image.tag=TAG (or image.digest=sha256:...)" -}}
{{- $repository := required (printf "image.repository is required: %s" $hint) .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{ $repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ $repository }}:{{ required (printf "image.tag or image.digest is required: %s" $hint) .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Helm's own labels, beside manifests/' app.kubernetes.io/part-of and name. */}}
{{- define "pullguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
