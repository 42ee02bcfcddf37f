{{/* Names, labels and the pieces every pod shares. */}}

{{- define "waas.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "waas.fullname" -}}
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

{{- define "waas.secretName" -}}
{{- default (printf "%s-secrets" (include "waas.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "waas.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "waas.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "waas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: waas
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "gateway"). */}}
{{- define "waas.selectorLabels" -}}
app.kubernetes.io/name: {{ include "waas.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "waas.podLabels" -}}
{{ include "waas.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- with .ctx.Values.region }}
waas.dev/region: {{ . | quote }}
{{- end }}
{{- with .ctx.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Spread over zones, then nodes; pass (dict "ctx" $ "component" "gateway" "values" .Values.gateway). */}}
{{- define "waas.topologySpread" -}}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
{{- toYaml .values.topologySpreadConstraints | nindent 2 }}
{{- else if .values.spreadAcrossZones }}
topologySpreadConstraints:
{{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "waas.selectorLabels" (dict "ctx" $.ctx "component" $.component) | nindent 8 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* What every pod spec shares: pull secrets, service account, security context. */}}
{{- define "waas.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccount.name }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
{{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* The Secret's keys as variables. `optional` on the NATS ones: an existingSecret may lack them. */}}
{{- define "waas.secretEnv" -}}
{{- $secret := include "waas.secretName" .ctx -}}
{{- $v := .ctx.Values -}}
{{- if has "database" .needs }}
- name: WAAS_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: database-url}
{{- end }}
{{- if has "operator" .needs }}
- name: WAAS_OPERATOR_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: operator-token}
{{- end }}
{{- if has "nats" .needs }}
{{- if $v.nats.auth.user }}
- name: WAAS_NATS_USER
  value: {{ $v.nats.auth.user | quote }}
{{- end }}
{{- if or $v.existingSecret $v.nats.auth.password }}
- name: WAAS_NATS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: nats-password, optional: true}
{{- end }}
{{- if or $v.existingSecret $v.nats.auth.token }}
- name: WAAS_NATS_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: nats-token, optional: true}
{{- end }}
{{- if $v.nats.auth.credsFile }}
- name: WAAS_NATS_CREDS_FILE
  value: /etc/waas/nats-creds/nats.creds
{{- end }}
{{- if $v.nats.tls.enabled }}
- name: WAAS_NATS_TLS_CA_FILE
  value: /etc/waas/nats-tls/ca.crt
- name: WAAS_NATS_TLS_REQUIRED
  value: "true"
{{- if $v.nats.tls.clientCert }}
- name: WAAS_NATS_TLS_CERT_FILE
  value: /etc/waas/nats-tls/tls.crt
- name: WAAS_NATS_TLS_KEY_FILE
  value: /etc/waas/nats-tls/tls.key
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Mounts and volumes for NATS files (creds, TLS) and a writable /tmp. */}}
{{- define "waas.natsMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.nats.auth.credsFile }}
- name: nats-creds
  mountPath: /etc/waas/nats-creds
  readOnly: true
{{- end }}
{{- if .Values.nats.tls.enabled }}
- name: nats-tls
  mountPath: /etc/waas/nats-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "waas.natsVolumes" -}}
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- if .Values.nats.auth.credsFile }}
- name: nats-creds
  secret:
    secretName: {{ include "waas.secretName" . }}
    items: [{key: nats-creds, path: nats.creds}]
    defaultMode: 0440
{{- end }}
{{- if .Values.nats.tls.enabled }}
- name: nats-tls
  secret:
    secretName: {{ required "nats.tls.secretName is required with nats.tls.enabled" .Values.nats.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* Plain settings: env, then the component's env, as name/value pairs sorted by name. */}}
{{- define "waas.plainEnv" -}}
{{- $all := merge (dict) (.own | default dict) (.ctx.Values.env | default dict) -}}
{{- range $name := keys $all | sortAlpha }}
{{- if not (regexMatch "^WAAS_[A-Z0-9_]+$" $name) }}
{{- fail (printf "env: %q is not a WAAS_* variable name" $name) }}
{{- end }}
{{- $owned := dict "WAAS_DATABASE_URL" "database.url (the Secret)" "WAAS_OPERATOR_TOKEN" "operatorToken (the Secret)" "WAAS_NATS_PASSWORD" "nats.auth.password (the Secret)" "WAAS_NATS_TOKEN" "nats.auth.token (the Secret)" "WAAS_NATS" "nats.url" "WAAS_LISTEN" "gateway.port / controlPlane.port" "WAAS_SUBJECT_PREFIX" "subjectPrefix" "WAAS_LOG" "logLevel" "WAAS_SHUTDOWN_GRACE_MS" "shutdownGraceSeconds" "WAAS_REGION" "region" -}}
{{- if hasKey $owned $name }}
{{- fail (printf "env: set %s through %s, not env" $name (index $owned $name)) }}
{{- end }}
- name: {{ $name }}
  value: {{ index $all $name | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The NATS URL of every component: the bundled NATS chart's Service when `bundledNats.enabled`
(named as that chart names it: `nats.fullname` with the alias as chart name), else `nats.url`.
*/}}
{{- define "waas.natsUrl" -}}
{{- if .Values.bundledNats.enabled -}}
{{- $b := .Values.bundledNats -}}
{{- $name := default "bundledNats" $b.nameOverride -}}
{{- $full := printf "%s-%s" .Release.Name $name -}}
{{- if $b.fullnameOverride -}}
{{- $full = $b.fullnameOverride -}}
{{- else if contains $name .Release.Name -}}
{{- $full = .Release.Name -}}
{{- end -}}
nats://{{ $full | trunc 63 | trimSuffix "-" }}:4222
{{- else -}}
{{- .Values.nats.url -}}
{{- end -}}
{{- end }}

{{/*
`regions` as WAAS_REGIONS takes them: `name=url,name=url`.
*/}}
{{- define "waas.regionsList" -}}
{{- $pairs := list -}}
{{- range . -}}
{{- $pairs = append $pairs (printf "%s=%s" .name .url) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
