{{/*
secret-proxy.container renders the sidecar container as one list item. As a native sidecar
(an init container with restartPolicy Always) the kubelet starts it first and holds the
application back until its startup probe passes, that is until /readyz says every required
secret is loaded; it also stops after the application, so the app never loses its secrets
while draining.
*/}}
{{- define "secret-proxy.container" -}}
{{- include "secret-proxy.validate" . -}}
{{- $v := .values -}}
{{- $native := $v.nativeSidecar -}}
{{- $image := $v.image -}}
{{- $repo := $image.repository -}}
{{- $tag := toString $image.tag -}}
{{- $digest := dig "digest" "" $image -}}
{{- $probes := $v.probes -}}
- name: secret-proxy
  image: {{ if $digest }}{{ printf "%s@%s" $repo $digest | quote }}{{ else }}{{ printf "%s:%s" $repo $tag | quote }}{{ end }}
  imagePullPolicy: {{ $image.pullPolicy }}
  {{- /* A configuration or vault error shows in `kubectl describe pod`, not only in the log. */}}
  terminationMessagePolicy: FallbackToLogsOnError
  {{- if $native }}
  restartPolicy: Always
  {{- end }}
  args:
    - --config
    - /etc/secret-proxy/config.yaml
  ports:
    - name: sp-ops
      containerPort: {{ $v.opsPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /readyz
      port: sp-ops
    periodSeconds: {{ $probes.startup.periodSeconds }}
    failureThreshold: {{ $probes.startup.failureThreshold }}
    timeoutSeconds: 2
  livenessProbe:
    httpGet:
      path: /livez
      port: sp-ops
    periodSeconds: {{ $probes.liveness.periodSeconds }}
    failureThreshold: {{ $probes.liveness.failureThreshold }}
    timeoutSeconds: 2
  readinessProbe:
    httpGet:
      path: /readyz
      port: sp-ops
    periodSeconds: {{ $probes.readiness.periodSeconds }}
    failureThreshold: {{ $probes.readiness.failureThreshold }}
    timeoutSeconds: 2
  resources:
    {{- $v.resources | toYaml | nindent 4 }}
  securityContext:
    {{- $v.securityContext | toYaml | nindent 4 }}
  volumeMounts:
    - name: secret-proxy-config
      mountPath: /etc/secret-proxy
      readOnly: true
    - name: secret-proxy-socket
      mountPath: {{ $v.socketDir | quote }}
    {{- if include "secret-proxy.tokenFile" . }}
    - name: secret-proxy-token
      mountPath: /var/run/secret-proxy-token
      readOnly: true
    {{- end }}
{{- end -}}

{{/* secret-proxy.initContainers: the sidecar for initContainers, or nothing when nativeSidecar is false. */}}
{{- define "secret-proxy.initContainers" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- if .values.nativeSidecar -}}
{{- include "secret-proxy.container" . -}}
{{- else -}}
{{- include "secret-proxy.validate" . -}}
{{- end -}}
{{- end -}}

{{/* secret-proxy.containers: the sidecar for containers when nativeSidecar is false (clusters before 1.29), else nothing. */}}
{{- define "secret-proxy.containers" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- if not .values.nativeSidecar -}}
{{- include "secret-proxy.container" . -}}
{{- else -}}
{{- include "secret-proxy.validate" . -}}
{{- end -}}
{{- end -}}

{{/*
secret-proxy.volumes: the pod volumes the sidecar needs, as list items. The socket lives in a
memory-backed emptyDir shared with the application; the pod's fsGroup owns it, which is what
lets the application (another user, same group) connect to the 0660 socket.
*/}}
{{- define "secret-proxy.volumes" -}}
{{- include "secret-proxy.validate" . -}}
- name: secret-proxy-config
  configMap:
    name: {{ include "secret-proxy.configMapName" . }}
- name: secret-proxy-socket
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- $ca := .values.clientAuth }}
{{- if dig "existingSecret" "" $ca }}
- name: secret-proxy-token
  secret:
    secretName: {{ dig "existingSecret" "" $ca | quote }}
    defaultMode: 0440
    items:
      - key: {{ $ca.key | quote }}
        path: token
{{- end }}
{{- end -}}

{{/* secret-proxy.clientVolumeMounts: what the application container mounts to reach the sidecar. */}}
{{- define "secret-proxy.clientVolumeMounts" -}}
{{- include "secret-proxy.validate" . -}}
- name: secret-proxy-socket
  mountPath: {{ .values.socketDir | quote }}
{{- if include "secret-proxy.tokenFile" . }}
- name: secret-proxy-token
  mountPath: /var/run/secret-proxy-token
  readOnly: true
{{- end }}
{{- end -}}

{{/*
secret-proxy.podLabels: the Azure Workload Identity label. The webhook only mutates pods that
carry it; it then injects AZURE_CLIENT_ID, AZURE_TENANT_ID and the federated token file.
Nothing for managed-identity mode.
*/}}
{{- define "secret-proxy.podLabels" -}}
{{- include "secret-proxy.validate" . -}}
{{- if ne .values.auth.mode "managed-identity" -}}
azure.workload.identity/use: "true"
{{- end -}}
{{- end -}}

{{/* secret-proxy.serviceAccountAnnotations: the identity the Workload Identity webhook hands to the pod. */}}
{{- define "secret-proxy.serviceAccountAnnotations" -}}
{{- include "secret-proxy.validate" . -}}
{{- if ne .values.auth.mode "managed-identity" -}}
azure.workload.identity/client-id: {{ dig "auth" "clientId" "" .values | quote }}
{{- with dig "auth" "tenantId" "" .values }}
azure.workload.identity/tenant-id: {{ . | quote }}
{{- end }}
{{- end -}}
{{- end -}}
