{{/*
secret-proxy.config renders the sidecar's configuration file (docs/reference/config.md). It
writes what the chart decides (the vault, the identity, the declared secrets, TCP off, the unix
socket in the shared emptyDir, the ops port the probes use, the token file) and every other key
only when the values set it: a key left unset is the sidecar's own default, which lives in the
sidecar alone (tools/chartcheck's TestChartDefaultsAreTheBinarys checks that). debugLoopbackPort
can open 127.0.0.1 inside the pod for grpcurl through kubectl port-forward.
*/}}
{{- define "secret-proxy.config" -}}
{{- include "secret-proxy.validate" . -}}
{{- $v := .values -}}
{{- $mode := $v.auth.mode -}}
vault:
  url: {{ $v.vault.url | quote }}
  {{- with include "secret-proxy.setKeys" (list $v.vault "disableChallengeResourceVerification") }}{{ . | nindent 2 }}{{ end }}
auth:
  mode: {{ $mode }}
  {{- /* With workload identity the webhook injects AZURE_CLIENT_ID from the service account
       annotation; the file carries the client id only where managed identity may be used. */}}
  {{- if ne $mode "workload-identity" }}
  clientId: {{ $v.auth.clientId | quote }}
  {{- end }}
  {{- with include "secret-proxy.setKeys" (list $v.auth "disableInstanceDiscovery") }}{{ . | nindent 2 }}{{ end }}
secrets:
{{- range $v.secrets }}
  - name: {{ .name | quote }}
    {{- with include "secret-proxy.setKeys" (list . "vaultSecret" "version" "optional") }}{{ . | nindent 4 }}{{ end }}
{{- end }}
{{- with include "secret-proxy.setKeys" (list $v.refresh "interval" "jitter" "minInterval" "maxStale" "refuseExpired") }}
refresh:
  {{- . | nindent 2 }}
{{- end }}
listen:
  {{- /* TCP stays off unless debugLoopbackPort opens pod-local loopback for grpcurl through kubectl port-forward. */}}
  grpc: {{ with $v.debugLoopbackPort }}{{ printf "127.0.0.1:%v" . | quote }}{{ else }}""{{ end }}
  {{- with include "secret-proxy.setKeys" (list $v "reflection") }}{{ . | nindent 2 }}{{ end }}
  unix: {{ include "secret-proxy.socketPath" . | quote }}
  ops: {{ printf "0.0.0.0:%v" $v.opsPort | quote }}
{{- $clientAuth := include "secret-proxy.setKeys" (list $v.clientAuth "allowedUIDs") }}
{{- with include "secret-proxy.tokenFile" . }}
{{- $clientAuth = printf "tokenFile: %s\n%s" (quote .) $clientAuth }}
{{- end }}
{{- with $clientAuth | trim }}
clientAuth:
  {{- . | nindent 2 }}
{{- end }}
{{- with include "secret-proxy.setKeys" (list $v.log "level" "format") }}
log:
  {{- . | nindent 2 }}
{{- end }}
{{- with include "secret-proxy.setKeys" (list $v.accessTokens "scopes" "refreshBefore") }}
accessTokens:
  {{- . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
secret-proxy.setKeys renders "key: value" lines, as JSON values (valid YAML, strings quoted),
for the keys of a map (the first list element) that are set and not null; nothing for the
others, or when the map is absent, so that the sidecar applies its own default.
*/}}
{{- define "secret-proxy.setKeys" -}}
{{- $m := first . -}}
{{- if kindIs "map" $m -}}
{{- $lines := list -}}
{{- range rest . -}}
{{- if and (hasKey $m .) (not (kindIs "invalid" (get $m .))) -}}
{{- $lines = append $lines (printf "%s: %s" . (toJson (get $m .))) -}}
{{- end -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}
{{- end -}}

{{/* secret-proxy.socketPath: where the gRPC unix socket lives, for the application's --sidecar flag. */}}
{{- define "secret-proxy.socketPath" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- printf "%s/grpc.sock" (.values.socketDir | trimSuffix "/") -}}
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
