package kvemulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultPageSize and maxPageSize follow Key Vault's list operations
// (maxresults: 1-25).
const (
	defaultPageSize = 25
	maxPageSize     = 25
)

// vaultGate runs before every route of the Key Vault data plane, and answers alone when it
// returns a status. Order matters and follows the real service: an outage answers before
// anything else; then the bearer challenge; then injected throttling and RBAC faults; then
// the rate limit; then the api-version check; then the route.
func (e *Emulator) vaultGate(w http.ResponseWriter, r *http.Request) int {
	if _, ok := e.takeFault(FaultOutage); ok {
		return kvError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "",
			"The service is temporarily unavailable (kv-emulator fault: outage). Retry later.")
	}
	if status, ok := e.authenticate(w, r); !ok {
		return status
	}
	if f, ok := e.takeFault(FaultThrottle, FaultForbidden); ok {
		if f.Mode == FaultForbidden {
			return kvError(w, http.StatusForbidden, "Forbidden", "ForbiddenByRbac",
				"Caller is not authorized to perform action on resource. If role assignments, deny assignments or role definitions were changed recently, please observe propagation time. (kv-emulator fault: forbidden)")
		}
		secs := retryAfterSeconds(f)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		return kvError(w, http.StatusTooManyRequests, "Throttled", "",
			"Rate limit is exceeded. Try again in "+strconv.FormatInt(secs, 10)+" seconds. (kv-emulator fault: throttle)")
	}
	if status, throttled := e.throttle(w, r.Header.Get("Authorization")); throttled {
		return status
	}

	if r.URL.Query().Get("api-version") == "" {
		return kvError(w, http.StatusBadRequest, "BadParameter", "", "The api-version query parameter is missing.")
	}
	return 0
}

// authenticate answers the bearer challenge. Key Vault's challenge carries the
// tenant as the 4th "/" field of authorization (azsecrets' parseTenant takes
// parts[3]) and the resource; the first request of every client goes out
// without a token to provoke it.
func (e *Emulator) authenticate(w http.ResponseWriter, r *http.Request) (int, bool) {
	authz := r.Header.Get("Authorization")
	tok, hasBearer := strings.CutPrefix(authz, "Bearer ")
	if hasBearer && e.checkToken(tok) {
		return 0, true
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="%s"`, e.tenantID, VaultResource))
	if authz == "" {
		return kvError(w, http.StatusUnauthorized, "Unauthorized", "", "AKV10000: Request is missing a Bearer or PoP token."), false
	}
	return kvError(w, http.StatusUnauthorized, "Unauthorized", "",
		"The access token was not issued by this emulator, has expired, or is for another resource than "+VaultResource+"."), false
}

func (e *Emulator) getSecret(w http.ResponseWriter, name, ver string) int {
	if validateSecretName(name) != nil {
		return kvError(w, http.StatusBadRequest, "BadParameter", "", "Invalid secret name: Key Vault names are 1-127 characters of 0-9, a-z, A-Z and '-'.")
	}
	e.mu.Lock()
	s, ok := e.secrets[strings.ToLower(name)]
	var body secretBundle
	var v *version
	if ok {
		if ver == "" {
			v = s.latest()
		} else {
			v = s.version(ver)
		}
		if v != nil && v.enabled {
			body = e.bundle(s, v, true)
		}
	}
	e.mu.Unlock()
	switch {
	case !ok || v == nil:
		id := name
		if ver != "" {
			id += "/" + ver
		}
		return kvError(w, http.StatusNotFound, "SecretNotFound", "", "A secret with (name/id) "+id+" was not found in this server.")
	case !v.enabled:
		return kvError(w, http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.")
	}
	return writeJSON(w, http.StatusOK, body)
}

// putSecret is Key Vault's Set Secret, for clients that write through the
// SDK (azsecrets.Client.SetSecret).
func (e *Emulator) putSecret(w http.ResponseWriter, r *http.Request, name string) int {
	if validateSecretName(name) != nil {
		return kvError(w, http.StatusBadRequest, "BadParameter", "", "Invalid secret name: Key Vault names are 1-127 characters of 0-9, a-z, A-Z and '-'.")
	}
	var in struct {
		Value       *string           `json:"value"`
		ContentType string            `json:"contentType"`
		Tags        map[string]string `json:"tags"`
		Attributes  *struct {
			Enabled *bool  `json:"enabled"`
			Exp     *int64 `json:"exp"`
			Nbf     *int64 `json:"nbf"`
		} `json:"attributes"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Value == nil {
		return kvError(w, http.StatusBadRequest, "BadParameter", "", "The request body must be JSON with a string 'value'.")
	}
	if len(*in.Value) > maxValueBytes {
		return kvError(w, http.StatusBadRequest, "BadParameter", "", "The secret value exceeds 25 KiB.")
	}
	opts := []SecretOption{WithContentType(in.ContentType), WithTags(in.Tags)}
	if a := in.Attributes; a != nil {
		if a.Exp != nil {
			opts = append(opts, WithExpires(time.Unix(*a.Exp, 0)))
		}
		if a.Nbf != nil {
			opts = append(opts, WithNotBefore(time.Unix(*a.Nbf, 0)))
		}
		if a.Enabled != nil && !*a.Enabled {
			opts = append(opts, WithDisabled())
		}
	}
	ver := e.SetSecret(name, *in.Value, opts...)
	e.mu.Lock()
	s := e.secrets[strings.ToLower(name)]
	var body secretBundle
	if s != nil && s.version(ver) != nil {
		body = e.bundle(s, s.version(ver), true)
	}
	e.mu.Unlock()
	return writeJSON(w, http.StatusOK, body)
}

func (e *Emulator) listSecrets(w http.ResponseWriter, r *http.Request) int {
	size, offset, ok := pageParams(r.URL.Query())
	if !ok {
		return kvError(w, http.StatusBadRequest, "BadParameter", "", "maxresults must be 1-25 and $skiptoken one this vault issued.")
	}
	e.mu.Lock()
	keys := slices.Sorted(maps.Keys(e.secrets))
	items := []secretBundle{}
	next := ""
	for i := offset; i < len(keys); i++ {
		if len(items) == size {
			next = e.nextLink("secrets", r.URL.Query().Get("api-version"), size, i)
			break
		}
		s := e.secrets[keys[i]]
		b := e.bundle(s, s.latest(), false)
		b.ID = e.vaultURL + "secrets/" + s.name
		items = append(items, b)
	}
	e.mu.Unlock()
	return writeJSON(w, http.StatusOK, listResult{Value: items, NextLink: next})
}

func (e *Emulator) listVersions(w http.ResponseWriter, r *http.Request, name string) int {
	size, offset, ok := pageParams(r.URL.Query())
	if !ok {
		return kvError(w, http.StatusBadRequest, "BadParameter", "", "maxresults must be 1-25 and $skiptoken one this vault issued.")
	}
	e.mu.Lock()
	s, found := e.secrets[strings.ToLower(name)]
	items := []secretBundle{}
	next := ""
	if found {
		for i := offset; i < len(s.versions); i++ {
			if len(items) == size {
				next = e.nextLink("secrets/"+s.name+"/versions", r.URL.Query().Get("api-version"), size, i)
				break
			}
			items = append(items, e.bundle(s, s.versions[i], false))
		}
	}
	e.mu.Unlock()
	if !found {
		return kvError(w, http.StatusNotFound, "SecretNotFound", "", "A secret with (name/id) "+name+" was not found in this server.")
	}
	return writeJSON(w, http.StatusOK, listResult{Value: items, NextLink: next})
}

// nextLink builds a page link. azsecrets uses it verbatim
// (runtime.NewRequestForNextLink), so it must carry api-version itself. The
// skip token is an opaque offset.
func (e *Emulator) nextLink(path, apiVersion string, size, offset int) string {
	q := url.Values{}
	q.Set("api-version", apiVersion)
	q.Set("maxresults", strconv.Itoa(size))
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset))))
	return e.vaultURL + path + "?" + q.Encode()
}

func pageParams(q url.Values) (size, offset int, ok bool) {
	size = defaultPageSize
	if s := q.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return 0, 0, false
		}
		size = n
	}
	if t := q.Get("$skiptoken"); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		if err != nil {
			return 0, 0, false
		}
		n, err := strconv.Atoi(string(b))
		if err != nil || n < 0 {
			return 0, 0, false
		}
		offset = n
	}
	return size, offset, true
}

// secretBundle is Key Vault's SecretBundle (and, without value, SecretItem).
type secretBundle struct {
	ID          string            `json:"id"`
	Value       *string           `json:"value,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Attributes  attributes        `json:"attributes"`
}

// attributes carries times as integer Unix seconds, as Key Vault does
// (azsecrets' SecretAttributes.UnmarshalJSON reads them as datetime.Unix).
type attributes struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int32  `json:"recoverableDays"`
}

type listResult struct {
	Value    []secretBundle `json:"value"`
	NextLink string         `json:"nextLink,omitempty"`
}

// bundle renders one version; e.mu must be held.
func (e *Emulator) bundle(s *secret, v *version, withValue bool) secretBundle {
	b := secretBundle{
		ID:          e.vaultURL + "secrets/" + s.name + "/" + v.id,
		ContentType: v.contentType,
		Tags:        maps.Clone(v.tags),
		Attributes: attributes{
			Enabled:         v.enabled,
			Created:         v.created.Unix(),
			Updated:         v.updated.Unix(),
			RecoveryLevel:   "Recoverable+Purgeable",
			RecoverableDays: 90,
		},
	}
	if withValue {
		val := v.value
		b.Value = &val
	}
	if v.expires != nil {
		x := v.expires.Unix()
		b.Attributes.Expires = &x
	}
	if v.notBefore != nil {
		x := v.notBefore.Unix()
		b.Attributes.NotBefore = &x
	}
	return b
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) int {
	return kvError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "", "The method "+r.Method+" is not supported on "+r.URL.Path+".")
}

// kvError writes Key Vault's error body:
// {"error":{"code":...,"message":...,"innererror":{"code":...}}}.
// azcore takes ResponseError.ErrorCode from error.code.
func kvError(w http.ResponseWriter, status int, code, inner, msg string) int {
	type innerErr struct {
		Code string `json:"code"`
	}
	type kvErr struct {
		Code       string    `json:"code"`
		Message    string    `json:"message"`
		InnerError *innerErr `json:"innererror,omitempty"`
	}
	body := struct {
		Error kvErr `json:"error"`
	}{kvErr{Code: code, Message: msg}}
	if inner != "" {
		body.Error.InnerError = &innerErr{Code: inner}
	}
	return writeJSON(w, status, body)
}
