package kvemulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxAdminBody bounds admin request bodies: a value is at most 25 KiB.
const maxAdminBody = 64 << 10

// adminSecretJSON is the body of PUT /admin/secrets/{name}; exp and nbf are
// Unix seconds, like Key Vault's attributes.
type adminSecretJSON struct {
	Value       *string           `json:"value"`
	ContentType string            `json:"contentType"`
	Exp         *int64            `json:"exp"`
	Nbf         *int64            `json:"nbf"`
	Tags        map[string]string `json:"tags"`
}

type faultJSON struct {
	Mode              string `json:"mode"`
	RetryAfterSeconds int    `json:"retryAfterSeconds"`
	Count             int    `json:"count"`
}

// tokensJSON is the body of PUT /admin/tokens: a new lifetime for the tokens
// issued from now on (0 or absent: unchanged) and tokens to issue next.
type tokensJSON struct {
	LifetimeSeconds int64           `json:"lifetimeSeconds"`
	Next            []nextTokenJSON `json:"next"`
}

type nextTokenJSON struct {
	Resource string `json:"resource"`
	Token    string `json:"token"`
}

// tokensStateJSON is the answer of GET and PUT /admin/tokens; it never holds
// a token, only how many are queued per resource.
type tokensStateJSON struct {
	LifetimeSeconds int64          `json:"lifetimeSeconds"`
	Queued          map[string]int `json:"queued"`
}

func (e *Emulator) adminSetTokens(w http.ResponseWriter, r *http.Request) int {
	var in tokensJSON
	if err := decodeStrict(w, r, &in); err != nil {
		return adminError(w, http.StatusBadRequest, "BadParameter", err.Error())
	}
	if in.LifetimeSeconds < 0 || in.LifetimeSeconds > int64(MaxTokenLifetime/time.Second) {
		return adminError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("lifetimeSeconds must be 1-%d (0 or absent leaves it unchanged)", int64(MaxTokenLifetime/time.Second)))
	}
	// Check every queued token before applying anything, so a bad request
	// changes nothing.
	for i, n := range in.Next {
		if normalizeResource(n.Resource) == "" || !validNextToken(n.Token) {
			return adminError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("next[%d]: needs a resource and a token of 1-%d printable ASCII bytes without spaces", i, maxNextTokenLen))
		}
	}
	if in.LifetimeSeconds > 0 {
		if err := e.SetTokenLifetime(time.Duration(in.LifetimeSeconds) * time.Second); err != nil {
			return adminError(w, http.StatusBadRequest, "BadParameter", err.Error())
		}
	}
	for _, n := range in.Next {
		if err := e.IssueNext(n.Resource, n.Token); err != nil {
			return adminError(w, http.StatusBadRequest, "BadParameter", err.Error())
		}
	}
	return writeJSON(w, http.StatusOK, tokensStateJSON{LifetimeSeconds: int64(e.TokenLifetime() / time.Second), Queued: e.QueuedTokens()})
}

func (e *Emulator) adminSetSecret(w http.ResponseWriter, r *http.Request, name string) int {
	var in adminSecretJSON
	if err := decodeStrict(w, r, &in); err != nil {
		return adminError(w, http.StatusBadRequest, "BadParameter", err.Error())
	}
	if in.Value == nil {
		return adminError(w, http.StatusBadRequest, "BadParameter", `the body needs "value" (a string)`)
	}
	if len(*in.Value) > maxValueBytes {
		return adminError(w, http.StatusBadRequest, "BadParameter", "value is longer than Key Vault's 25 KiB limit")
	}
	if len(in.ContentType) > 255 {
		return adminError(w, http.StatusBadRequest, "BadParameter", "contentType is longer than 255 characters")
	}
	if len(in.Tags) > 15 {
		return adminError(w, http.StatusBadRequest, "BadParameter", "Key Vault allows at most 15 tags")
	}
	opts := []SecretOption{WithContentType(in.ContentType)}
	if in.Tags != nil {
		opts = append(opts, WithTags(in.Tags))
	}
	if in.Exp != nil {
		opts = append(opts, WithExpires(time.Unix(*in.Exp, 0)))
	}
	if in.Nbf != nil {
		opts = append(opts, WithNotBefore(time.Unix(*in.Nbf, 0)))
	}
	if in.Exp != nil && in.Nbf != nil && *in.Nbf > *in.Exp {
		return adminError(w, http.StatusBadRequest, "BadParameter", "nbf is after exp")
	}
	ver := e.SetSecret(name, *in.Value, opts...)
	return writeJSON(w, http.StatusOK, map[string]string{
		"name":    name,
		"version": ver,
		"id":      e.vaultURL + "secrets/" + name + "/" + ver,
	})
}

func (e *Emulator) adminSetFault(w http.ResponseWriter, r *http.Request, set func(Fault)) int {
	var in faultJSON
	if err := decodeStrict(w, r, &in); err != nil {
		return adminError(w, http.StatusBadRequest, "BadParameter", err.Error())
	}
	mode, err := ParseFaultMode(in.Mode)
	if err != nil {
		return adminError(w, http.StatusBadRequest, "BadParameter", err.Error())
	}
	if in.RetryAfterSeconds < 0 || in.RetryAfterSeconds > 3600 {
		return adminError(w, http.StatusBadRequest, "BadParameter", "retryAfterSeconds must be 0-3600")
	}
	if in.Count < 0 {
		return adminError(w, http.StatusBadRequest, "BadParameter", "count must be 0 (until changed) or more")
	}
	f := Fault{Mode: mode, RetryAfter: time.Duration(in.RetryAfterSeconds) * time.Second, Count: in.Count}
	set(f)
	return writeJSON(w, http.StatusOK, faultJSON{Mode: mode.String(), RetryAfterSeconds: in.RetryAfterSeconds, Count: in.Count})
}

func (e *Emulator) adminResult(w http.ResponseWriter, name string, err error) int {
	if errors.Is(err, ErrSecretNotFound) {
		return adminError(w, http.StatusNotFound, "SecretNotFound", "A secret with (name/id) "+name+" was not found in this server.")
	}
	if err != nil {
		return adminError(w, http.StatusInternalServerError, "InternalError", err.Error())
	}
	return writeJSON(w, http.StatusOK, map[string]string{"name": name})
}

// decodeStrict decodes one JSON object, refusing unknown fields and trailing
// data so a typo in a test's request is an error, not a silent no-op.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		return fmt.Errorf("read body (at most %d bytes): %w", maxAdminBody, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// A syntax error's message quotes a character of the input, which
		// may be part of a value: report only the offset.
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Errorf("invalid JSON body: syntax error at byte %d", syn.Offset)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("invalid JSON body: field %q must be %s, not %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON body: more than one value")
	}
	return nil
}

func adminMethod(w http.ResponseWriter, r *http.Request, allowed string) int {
	w.Header().Set("Allow", allowed)
	return adminError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" is not supported on "+r.URL.Path+"; use "+allowed)
}

// adminError uses the same body shape as Key Vault errors.
func adminError(w http.ResponseWriter, status int, code, msg string) int {
	return kvError(w, status, code, "", msg)
}
