{{/*
Every public template of this library takes the same argument:

  (dict "values" .Values.secretProxy "context" $ ["name" (include "mychart.fullname" .)])

"values" is the including chart's secret-proxy block, "context" the root context (for the
release, the chart and the cluster's capabilities), and "name" an optional base name for the
objects the library renders (default: <release>-<chart>). A wrong call fails the render with
the call to write instead of producing a broken pod.
*/}}
{{- define "secret-proxy.checkArgs" -}}
{{- $usage := "call it as (dict \"values\" .Values.secretProxy \"context\" $)" -}}
{{- if not (kindIs "map" .) -}}
{{- fail (printf "secret-proxy: a library template got a %s argument; %s" (kindOf .) $usage) -}}
{{- end -}}
{{- if not (hasKey . "context") -}}
{{- fail (printf "secret-proxy: the argument has no \"context\" key; %s" $usage) -}}
{{- end -}}
{{- if not (and (kindIs "map" .context) (hasKey .context "Release")) -}}
{{- fail (printf "secret-proxy: \"context\" must be the root context $, got %s; %s" (kindOf .context) $usage) -}}
{{- end -}}
{{- if not (hasKey . "values") -}}
{{- fail (printf "secret-proxy: the argument has no \"values\" key; %s" $usage) -}}
{{- end -}}
{{- if not (kindIs "map" .values) -}}
{{- fail (printf "secret-proxy: \"values\" must be a map (the chart's secretProxy block), got %s; set secretProxy in values.yaml" (kindOf .values)) -}}
{{- end -}}
{{- /* The library's defaults live in its values.yaml only: the templates read them from the
     block, where Helm puts them for a dependency aliased secretProxy. */ -}}
{{- range list "nativeSidecar" "image" "auth" "socketDir" "opsPort" "clientAuth" "probes" "resources" "securityContext" -}}
{{- if not (hasKey $.values .) -}}
{{- fail (printf "secret-proxy: \"values\" has no %q key, one of the library's defaults (charts/secret-proxy/values.yaml): declare the dependency with alias: secretProxy in Chart.yaml, so that Helm merges those defaults into .Values.secretProxy and checks the block against the library's values.schema.json" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* secret-proxy.name: the base name of the objects the library renders, 63 characters at most. */}}
{{- define "secret-proxy.name" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- $base := default (printf "%s-%s" .context.Release.Name .context.Chart.Name) .name -}}
{{- printf "%s-secret-proxy" ($base | trunc 50 | trimSuffix "-") -}}
{{- end -}}

{{/* secret-proxy.configMapName: the ConfigMap holding the sidecar's configuration file. */}}
{{- define "secret-proxy.configMapName" -}}
{{- include "secret-proxy.name" . -}}
{{- end -}}

{{/*
secret-proxy.validate fails on values the sidecar would refuse, so a mistake shows at
`helm install` rather than as a crash-looping pod. The sidecar's --check remains the authority.
*/}}
{{- define "secret-proxy.validate" -}}
{{- include "secret-proxy.checkArgs" . -}}
{{- $v := .values -}}
{{- $url := dig "vault" "url" "" $v -}}
{{- if not $url -}}
{{- fail "secret-proxy: secretProxy.vault.url is required, e.g. https://my-vault.vault.azure.net/" -}}
{{- end -}}
{{- if not (hasPrefix "https://" $url) -}}
{{- fail (printf "secret-proxy: secretProxy.vault.url must start with https:// (bearer tokens never go over http), got %q" $url) -}}
{{- end -}}
{{- $mode := $v.auth.mode -}}
{{- if not (has $mode (list "workload-identity" "managed-identity" "default")) -}}
{{- fail (printf "secret-proxy: secretProxy.auth.mode must be workload-identity, managed-identity or default, got %q" $mode) -}}
{{- end -}}
{{- if not (dig "auth" "clientId" "" $v) -}}
{{- fail "secret-proxy: secretProxy.auth.clientId is required: the client id of the user-assigned (or kubelet) managed identity that may read the vault (az identity show --query clientId)" -}}
{{- end -}}
{{- $secrets := dig "secrets" list $v -}}
{{- if not (kindIs "slice" $secrets) -}}
{{- fail "secret-proxy: secretProxy.secrets must be a list of {name, vaultSecret, version, optional}" -}}
{{- end -}}
{{- if not $secrets -}}
{{- fail "secret-proxy: secretProxy.secrets is empty: declare the vault secrets this pod may read" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $s := $secrets -}}
{{- $name := dig "name" "" $s -}}
{{- if not (regexMatch "^[0-9A-Za-z-]{1,127}$" $name) -}}
{{- fail (printf "secret-proxy: secretProxy.secrets[%d].name %q must be 1-127 characters of 0-9, A-Z, a-z and -" $i $name) -}}
{{- end -}}
{{- $vs := dig "vaultSecret" "" $s -}}
{{- if and $vs (not (regexMatch "^[0-9A-Za-z-]{1,127}$" $vs)) -}}
{{- fail (printf "secret-proxy: secretProxy.secrets[%d].vaultSecret %q must be 1-127 characters of 0-9, A-Z, a-z and -" $i $vs) -}}
{{- end -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "secret-proxy: secretProxy.secrets declares %q twice" $name) -}}
{{- end -}}
{{- $_ := set $seen $name true -}}
{{- end -}}
{{- $level := dig "log" "level" "" $v -}}
{{- if and $level (not (has $level (list "debug" "info" "warn" "error"))) -}}
{{- fail (printf "secret-proxy: secretProxy.log.level must be debug, info, warn or error, got %q" $level) -}}
{{- end -}}
{{- $dir := $v.socketDir -}}
{{- if not (hasPrefix "/" $dir) -}}
{{- fail (printf "secret-proxy: secretProxy.socketDir must be an absolute path, got %q" $dir) -}}
{{- end -}}
{{- if and $v.nativeSidecar (not (semverCompare ">=1.29.0-0" .context.Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "secret-proxy: native sidecars need Kubernetes 1.29 or later and this cluster is %s; set secretProxy.nativeSidecar=false to run the sidecar as a regular container" .context.Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- $ca := $v.clientAuth -}}
{{- if and (dig "debugLoopbackPort" 0 $v) (dig "allowedUIDs" list $ca) (not (dig "existingSecret" "" $ca)) -}}
{{- fail "secret-proxy: secretProxy.clientAuth.allowedUIDs checks callers on the unix socket only, and debugLoopbackPort opens 127.0.0.1 to every container of the pod without that check: set secretProxy.clientAuth.existingSecret (a bearer token every caller must send), or debugLoopbackPort: 0" -}}
{{- end -}}
{{- if and (dig "existingSecret" "" $ca) (not $ca.key) -}}
{{- fail "secret-proxy: secretProxy.clientAuth.key must name the key of clientAuth.existingSecret that holds the token" -}}
{{- end -}}
{{- end -}}
