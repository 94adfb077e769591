{{/* Chart name and fullname */}}
{{- define "callstream.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one component: (dict "root" $ "component" "ingest") */}}
{{- define "callstream.componentName" -}}
{{- printf "%s-%s" (include "callstream.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "callstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: callstream
{{- end -}}

{{/* (dict "root" $ "component" "ingest") */}}
{{- define "callstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callstream.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "callstream.componentLabels" -}}
{{ include "callstream.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "callstream.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .component (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "callstream.apiTokenSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-api-token" (include "callstream.fullname" .)) -}}
{{- end -}}

{{- define "callstream.kafkaBootstrap" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s-kafka:9092" .Release.Name -}}
{{- else -}}
{{- .Values.kafkaBootstrap -}}
{{- end -}}
{{- end -}}

{{- define "callstream.clickhouseUrl" -}}
{{- if .Values.clickhouse.enabled -}}
{{- printf "http://%s-clickhouse:8123" .Release.Name -}}
{{- else -}}
{{- .Values.clickhouseUrl -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security context shared by every pod */}}
{{- define "callstream.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context shared by every container */}}
{{- define "callstream.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment shared by every container: (dict "root" $) */}}
{{- define "callstream.commonEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ include "callstream.kafkaBootstrap" .root | quote }}
- name: CLICKHOUSE_URL
  value: {{ include "callstream.clickhouseUrl" .root | quote }}
# "TOKEN:ROLE[,TOKEN:ROLE...]" (roles: agent, team_lead, qa, hr, manager, admin, service).
- name: API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "callstream.apiTokenSecret" .root }}
      key: {{ .root.Values.auth.secretKey }}
# Salt of the caller-number hash: a secret, never the public development default.
- name: CALLER_SALT
  valueFrom:
    secretKeyRef:
      name: {{ include "callstream.apiTokenSecret" .root }}
      key: {{ .root.Values.auth.callerSaltKey }}
- name: TLS_ENABLED
  value: {{ .root.Values.tls.enabled | quote }}
{{- if .root.Values.tls.enabled }}
- name: TLS_CERT_FILE
  value: {{ printf "%s/tls.crt" .root.Values.tls.mountPath | quote }}
- name: TLS_KEY_FILE
  value: {{ printf "%s/tls.key" .root.Values.tls.mountPath | quote }}
{{- end }}
{{- end -}}

{{/* Volumes shared by every pod, plus an emptyDir "data" when the component has a dataDir */}}
{{- define "callstream.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .dataDir }}
- name: data
  emptyDir: {}
{{- end }}
{{- if .root.Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .root.Values.tls.certSecret }}
{{- end }}
{{- end -}}

{{- define "callstream.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- with .dataDir }}
- name: data
  mountPath: {{ . }}
{{- end }}
{{- if .root.Values.tls.enabled }}
- name: tls
  mountPath: {{ .root.Values.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
Deployment + Service for one component.
(dict "root" $ "component" "ingest" "cfg" .Values.ingest "grpc" false "extraEnv" list
      "readinessService" "callstream.routing.v1.Router" (gRPC only, optional: the health service name probed)
      "dataDir" "/var/lib/callstream" (optional: an emptyDir mounted there, the one writable place besides /tmp))
gRPC probes go to cfg.healthPort: the kubelet's gRPC probe speaks no TLS, so the service answers health in plain
text on that port (HEALTH_PORT) whatever tls.enabled says. HTTP probes use the scheme the server serves.
With cfg.autoscaling.enabled the HorizontalPodAutoscaler owns the replica count.
*/}}
{{- define "callstream.workload" -}}
{{- $root := .root -}}
{{- $cfg := .cfg -}}
{{- $scheme := ternary "HTTPS" "HTTP" $root.Values.tls.enabled -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "callstream.componentName" . }}
  labels:
    {{- include "callstream.componentLabels" . | nindent 4 }}
spec:
  {{- if not (and $cfg.autoscaling $cfg.autoscaling.enabled) }}
  replicas: {{ $cfg.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "callstream.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "callstream.componentLabels" . | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "callstream.podSecurityContext" . | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "callstream.image" . }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", {{ $cfg.module | quote }}]
          ports:
            - name: {{ ternary "grpc" "http" .grpc }}
              containerPort: {{ $cfg.port }}
            {{- if ne (int $cfg.metricsPort) (int $cfg.port) }}
            - name: metrics
              containerPort: {{ $cfg.metricsPort }}
            {{- end }}
            {{- if .grpc }}
            - name: health
              containerPort: {{ $cfg.healthPort }}
            {{- end }}
          env:
            # The services' settings: GRPC_PORT/GRPC_HOST (routing), HTTP_PORT/HTTP_HOST (the others);
            # they listen on loopback by default, so a pod must ask for all interfaces.
            - name: {{ ternary "GRPC_PORT" "HTTP_PORT" .grpc }}
              value: {{ $cfg.port | quote }}
            - name: {{ ternary "GRPC_HOST" "HTTP_HOST" .grpc }}
              value: "0.0.0.0"
            - name: METRICS_PORT
              value: {{ $cfg.metricsPort | quote }}
            {{- if .grpc }}
            - name: HEALTH_PORT
              value: {{ $cfg.healthPort | quote }}
            {{- end }}
            {{- include "callstream.commonEnv" . | nindent 12 }}
            {{- with .extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if .grpc }}
          livenessProbe:
            grpc: {port: {{ $cfg.healthPort }}}
            periodSeconds: 10
          readinessProbe:
            grpc: {port: {{ $cfg.healthPort }}{{ with .readinessService }}, service: {{ . | quote }}{{ end }}}
            periodSeconds: 5
          {{- else }}
          livenessProbe:
            httpGet: {path: /healthz, port: {{ $cfg.port }}, scheme: {{ $scheme }}}
            periodSeconds: 10
          readinessProbe:
            httpGet: {path: /readyz, port: {{ $cfg.port }}, scheme: {{ $scheme }}}
            periodSeconds: 5
          {{- end }}
          resources:
            {{- toYaml $cfg.resources | nindent 12 }}
          securityContext:
            {{- include "callstream.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            {{- include "callstream.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "callstream.volumes" . | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "callstream.componentName" . }}
  labels:
    {{- include "callstream.componentLabels" . | nindent 4 }}
spec:
  selector:
    {{- include "callstream.selectorLabels" . | nindent 4 }}
  ports:
    - name: {{ ternary "grpc" "http" .grpc }}
      port: {{ $cfg.port }}
      targetPort: {{ $cfg.port }}
    {{- if ne (int $cfg.metricsPort) (int $cfg.port) }}
    - name: metrics
      port: {{ $cfg.metricsPort }}
      targetPort: {{ $cfg.metricsPort }}
    {{- end }}
{{- end -}}
