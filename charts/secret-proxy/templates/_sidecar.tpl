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
{{- $native := dig "nativeSidecar" true $v -}}
{{- $image := dig "image" dict $v -}}
{{- $repo := dig "repository" "ghcr.io/secretproxy/secret-proxy" $image -}}
{{- $tag := toString (dig "tag" "0.1.0" $image) -}}
{{- $digest := dig "digest" "" $image -}}
{{- $probes := dig "probes" dict $v -}}
- name: secret-proxy
  image: {{ if $digest }}{{ printf "%s@%s" $repo $digest | quote }}{{ else }}{{ printf "%s:%s" $repo $tag | quote }}{{ end }}
  imagePullPolicy: {{ dig "pullPolicy" "IfNotPresent" $image }}
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
      containerPort: {{ dig "opsPort" 9090 $v }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /readyz
      port: sp-ops
    periodSeconds: {{ dig "startup" "periodSeconds" 2 $probes }}
    failureThreshold: {{ dig "startup" "failureThreshold" 90 $probes }}
    timeoutSeconds: 2
  livenessProbe:
    httpGet:
      path: /livez
      port: sp-ops
    periodSeconds: {{ dig "liveness" "periodSeconds" 10 $probes }}
    failureThreshold: {{ dig "liveness" "failureThreshold" 3 $probes }}
    timeoutSeconds: 2
  readinessProbe:
    httpGet:
      path: /readyz
      port: sp-ops
    periodSeconds: {{ dig "readiness" "periodSeconds" 10 $probes }}
    failureThreshold: {{ dig "readiness" "failureThreshold" 3 $probes }}
    timeoutSeconds: 2
  resources:
    {{- dig "resources" (dict "requests" (dict "cpu" "10m" "memory" "32Mi") "limits" (dict "memory" "128Mi")) $v | toYaml | nindent 4 }}
  securityContext:
    {{- dig "securityContext" (fromYaml (include "secret-proxy.defaultSecurityContext" .)) $v | toYaml | nindent 4 }}
  volumeMounts:
    - name: secret-proxy-config
      mountPath: /etc/secret-proxy
      readOnly: true
    - name: secret-proxy-socket
      mountPath: {{ dig "socketDir" "/var/run/secret-proxy" $v | quote }}
    {{- if include "secret-proxy.tokenFile" . }}
    - name: secret-proxy-token
      mountPath: /var/run/secret-proxy-token
      readOnly: true
    {{- end }}
{{- end -}}

{{/*
The sidecar's default container security context: the Pod Security "restricted" profile plus
a read-only root file system. 65532 is distroless's nonroot user.
*/}}
{{- define "secret-proxy.defaultSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* secret-proxy.initContainers: the sidecar for initContainers, or nothing when nativeSidecar is false. */}}
{{- define "secret-proxy.initContainers" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- if dig "nativeSidecar" true .values -}}
{{- include "secret-proxy.container" . -}}
{{- else -}}
{{- include "secret-proxy.validate" . -}}
{{- end -}}
{{- end -}}

{{/* secret-proxy.containers: the sidecar for containers when nativeSidecar is false (clusters before 1.29), else nothing. */}}
{{- define "secret-proxy.containers" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- if not (dig "nativeSidecar" true .values) -}}
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
{{- $ca := dig "clientAuth" dict .values }}
{{- if dig "existingSecret" "" $ca }}
- name: secret-proxy-token
  secret:
    secretName: {{ dig "existingSecret" "" $ca | quote }}
    defaultMode: 0440
    items:
      - key: {{ dig "key" "token" $ca | quote }}
        path: token
{{- end }}
{{- end -}}

{{/* secret-proxy.clientVolumeMounts: what the application container mounts to reach the sidecar. */}}
{{- define "secret-proxy.clientVolumeMounts" -}}
{{- include "secret-proxy.validate" . -}}
- name: secret-proxy-socket
  mountPath: {{ dig "socketDir" "/var/run/secret-proxy" .values | quote }}
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
{{- if ne (dig "auth" "mode" "workload-identity" .values) "managed-identity" -}}
azure.workload.identity/use: "true"
{{- end -}}
{{- end -}}

{{/* secret-proxy.serviceAccountAnnotations: the identity the Workload Identity webhook hands to the pod. */}}
{{- define "secret-proxy.serviceAccountAnnotations" -}}
{{- include "secret-proxy.validate" . -}}
{{- if ne (dig "auth" "mode" "workload-identity" .values) "managed-identity" -}}
azure.workload.identity/client-id: {{ dig "auth" "clientId" "" .values | quote }}
{{- with dig "auth" "tenantId" "" .values }}
azure.workload.identity/tenant-id: {{ . | quote }}
{{- end }}
{{- end -}}
{{- end -}}
