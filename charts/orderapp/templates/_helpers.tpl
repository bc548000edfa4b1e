{{/* orderapp.name: the chart name, or nameOverride. */}}
{{- define "orderapp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* orderapp.fullname: the base name of every object; 63 characters at most (DNS label). */}}
{{- define "orderapp.fullname" -}}
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

{{/* orderapp.selectorLabels: immutable once deployed, so only name and instance. */}}
{{- define "orderapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orderapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* orderapp.labels: the recommended labels for every object. */}}
{{- define "orderapp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "orderapp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* orderapp.serviceAccountName: the account the Workload Identity federated credential names. */}}
{{- define "orderapp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orderapp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false (the federated credential names it)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* orderapp.image: repository@digest when a digest is set, else repository:tag. */}}
{{- define "orderapp.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
orderapp.appContainers: the application's containers (every container but the sidecar), as a
YAML list. The deployment parses it once and passes it both to the pod and to
secret-proxy.podAnnotations, so a container added here is kept out of the Workload Identity
webhook's reach without a second list to maintain.
*/}}
{{- define "orderapp.appContainers" -}}
{{- $sp := dict "values" .Values.secretProxy "context" $ "name" (include "orderapp.fullname" .) -}}
{{- $names := .Values.app.secretNames -}}
- name: orderapp
  image: {{ include "orderapp.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  terminationMessagePolicy: FallbackToLogsOnError
  args:
    - serve
    - --listen
    - {{ printf "0.0.0.0:%v" .Values.app.port | quote }}
    - --sidecar
    - {{ include "secret-proxy.sidecarAddress" $sp | quote }}
    {{- with include "secret-proxy.tokenFile" $sp }}
    - --sidecar-token-file
    - {{ . | quote }}
    {{- end }}
    - --db-driver
    - {{ .Values.app.dbDriver | quote }}
    - --db-auth
    - {{ .Values.app.dbAuth | default "password" | quote }}
    - --secret-server
    - {{ $names.server | quote }}
    - --secret-user
    - {{ $names.user | quote }}
    - --secret-password
    - {{ $names.password | quote }}
    - --secret-name
    - {{ $names.name | quote }}
    {{- range .Values.app.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.app.port }}
      protocol: TCP
  livenessProbe:
    httpGet:
      path: /livez
      port: http
    periodSeconds: 10
    failureThreshold: 3
    timeoutSeconds: 2
  readinessProbe:
    httpGet:
      path: /readyz
      port: http
    periodSeconds: 5
    failureThreshold: 3
    timeoutSeconds: 2
  resources:
    {{- toYaml .Values.app.resources | nindent 6 }}
  securityContext:
    {{- toYaml .Values.app.securityContext | nindent 6 }}
  volumeMounts:
    {{- include "secret-proxy.clientVolumeMounts" $sp | nindent 6 }}
{{- end -}}

{{/*
orderapp.testSelectorLabels: the helm test pod's labels. They differ from selectorLabels in
app.kubernetes.io/name, so the Service, the PodDisruptionBudget and the NetworkPolicy never
select the test pod; the NetworkPolicy names them to let the test in.
*/}}
{{- define "orderapp.testSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "orderapp.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
