{{/*
secret-proxy.config renders the sidecar's configuration file (docs/reference/config.md). Every key
is written out, so `secret-proxy --check` sees exactly what runs. TCP is off: the application
reaches the sidecar only through the unix socket in the shared emptyDir (debugLoopbackPort
can open 127.0.0.1 inside the pod for grpcurl through kubectl port-forward).
*/}}
{{- define "secret-proxy.config" -}}
{{- include "secret-proxy.validate" . -}}
{{- $v := .values -}}
{{- $mode := dig "auth" "mode" "workload-identity" $v -}}
vault:
  url: {{ dig "vault" "url" "" $v | quote }}
  disableChallengeResourceVerification: {{ dig "vault" "disableChallengeResourceVerification" false $v }}
auth:
  mode: {{ $mode }}
  {{- /* With workload identity the webhook injects AZURE_CLIENT_ID from the service account
       annotation; the file carries the client id only where managed identity may be used. */}}
  clientId: {{ if eq $mode "workload-identity" }}""{{ else }}{{ dig "auth" "clientId" "" $v | quote }}{{ end }}
  disableInstanceDiscovery: {{ dig "auth" "disableInstanceDiscovery" false $v }}
secrets:
{{- range (dig "secrets" list $v) }}
  - name: {{ .name | quote }}
    vaultSecret: {{ default .name (dig "vaultSecret" "" .) | quote }}
    version: {{ dig "version" "" . | quote }}
    optional: {{ dig "optional" false . }}
{{- end }}
refresh:
  interval: {{ dig "refresh" "interval" "5m" $v | quote }}
  jitter: {{ dig "refresh" "jitter" 0.1 $v }}
  minInterval: {{ dig "refresh" "minInterval" "10s" $v | quote }}
  maxStale: {{ dig "refresh" "maxStale" "0s" $v | quote }}
  refuseExpired: {{ dig "refresh" "refuseExpired" false $v }}
listen:
  {{- /* TCP stays off unless debugLoopbackPort opens pod-local loopback for grpcurl through kubectl port-forward. */}}
  grpc: {{ with dig "debugLoopbackPort" 0 $v }}{{ printf "127.0.0.1:%v" . | quote }}{{ else }}""{{ end }}
  reflection: {{ dig "reflection" false $v }}
  allowNonLoopback: false
  unix: {{ include "secret-proxy.socketPath" . | quote }}
  ops: {{ printf "0.0.0.0:%v" (dig "opsPort" 9090 $v) | quote }}
clientAuth:
  tokenFile: {{ include "secret-proxy.tokenFile" . | quote }}
  allowedUIDs: {{ dig "clientAuth" "allowedUIDs" list $v | toJson }}
log:
  level: {{ dig "log" "level" "info" $v }}
  format: {{ dig "log" "format" "json" $v }}
accessTokens:
  scopes: {{ dig "accessTokens" "scopes" list $v | toJson }}
  refreshBefore: {{ dig "accessTokens" "refreshBefore" "5m" $v | quote }}
{{- end -}}

{{/* secret-proxy.socketPath: where the gRPC unix socket lives, for the application's --sidecar flag. */}}
{{- define "secret-proxy.socketPath" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- printf "%s/grpc.sock" (dig "socketDir" "/var/run/secret-proxy" .values | trimSuffix "/") -}}
{{- end -}}

{{/* secret-proxy.sidecarAddress: the socket as a gRPC target, e.g. unix:///var/run/secret-proxy/grpc.sock. */}}
{{- define "secret-proxy.sidecarAddress" -}}
{{- printf "unix://%s" (include "secret-proxy.socketPath" .) -}}
{{- end -}}

{{/* secret-proxy.tokenFile: the bearer token's path in both containers, or "" without clientAuth.existingSecret. */}}
{{- define "secret-proxy.tokenFile" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- if dig "clientAuth" "existingSecret" "" .values -}}
/var/run/secret-proxy-token/token
{{- end -}}
{{- end -}}

{{/*
secret-proxy.configMap renders the whole ConfigMap object. It holds names and settings only:
secret values never pass through the chart.
*/}}
{{- define "secret-proxy.configMap" -}}
{{- include "secret-proxy.validate" . -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "secret-proxy.configMapName" . }}
  namespace: {{ .context.Release.Namespace | quote }}
  labels:
    {{- include "secret-proxy.labels" . | nindent 4 }}
data:
  config.yaml: |
    {{- include "secret-proxy.config" . | nindent 4 }}
{{- end -}}

{{/* secret-proxy.labels: recommended labels for the library's own objects. */}}
{{- define "secret-proxy.labels" -}}
{{- include "secret-proxy.checkArgs" . -}}
app.kubernetes.io/component: secret-proxy
app.kubernetes.io/instance: {{ .context.Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .context.Chart.Name .context.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{- end -}}

{{/*
secret-proxy.podAnnotations: a checksum of the configuration, so that changing the declared
secrets or settings rolls the pods (the sidecar reads its file once at start), and, where the
Workload Identity webhook mutates the pod, azure.workload.identity/skip-containers.

The webhook projects the federated token and the AZURE_* variables into every container and
init container of a labelled pod that this annotation does not name: without it the
application could get a Key Vault token itself. The argument's "containers" key lists every
other container of the pod (regular and init), as names or as container objects, e.g.
(merge (dict "containers" (list "app")) $sp) or the parsed list the pod renders; it is
required in workload identity mode, so a chart that forgets it fails to render instead of
handing out the token.
*/}}
{{- define "secret-proxy.podAnnotations" -}}
checksum/secret-proxy-config: {{ include "secret-proxy.config" . | sha256sum | quote }}
{{- with include "secret-proxy.skipContainers" . }}
azure.workload.identity/skip-containers: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* secret-proxy.skipContainers: the semicolon-separated names the webhook must leave alone, or "" without the webhook. */}}
{{- define "secret-proxy.skipContainers" -}}
{{- if include "secret-proxy.podLabels" . -}}
{{- if not (hasKey . "containers") -}}
{{- fail "secret-proxy: secret-proxy.podAnnotations needs the pod's other containers so that the Workload Identity webhook keeps the Key Vault token out of them: pass (merge (dict \"containers\" (list \"app\")) $sp) naming every container and init container except secret-proxy" -}}
{{- end -}}
{{- $names := list -}}
{{- range $i, $c := .containers -}}
{{- $n := "" -}}
{{- if kindIs "string" $c -}}{{- $n = $c -}}{{- else if kindIs "map" $c -}}{{- $n = dig "name" "" $c -}}{{- end -}}
{{- if not $n -}}
{{- fail (printf "secret-proxy: containers[%d] passed to secret-proxy.podAnnotations has no name; pass container names or container objects" $i) -}}
{{- end -}}
{{- if ne $n "secret-proxy" -}}{{- $names = append $names $n -}}{{- end -}}
{{- end -}}
{{- if not $names -}}
{{- fail "secret-proxy: secret-proxy.podAnnotations got no container besides secret-proxy in \"containers\"; name the application's containers" -}}
{{- end -}}
{{- $names | uniq | join ";" -}}
{{- end -}}
{{- end -}}
