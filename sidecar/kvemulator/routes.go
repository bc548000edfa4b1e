package kvemulator

import (
	"net"
	"net/http"
	"time"
)

// The routes of both listeners, as http.ServeMux patterns. Every handler answers and returns
// the status it wrote, which the request log records with the API's kind ("vault", "admin",
// "token"). A pattern without a method next to one with a method answers the other methods
// with the API's own 405 (Key Vault's, the admin API's or OAuth's JSON), not ServeMux's
// plain-text one; a catch-all answers the API's own 404.

// handler is the shape of every route: it answers and returns the status it wrote.
type handler func(http.ResponseWriter, *http.Request) int

// slashTolerant returns a registrar on mux that routes a pattern, and the same
// path with a trailing slash, to h behind gate.
func (e *Emulator) slashTolerant(mux *http.ServeMux, kind string, gate handler) func(pattern string, h handler) {
	return func(pattern string, h handler) {
		f := e.route(kind, gate, h)
		mux.HandleFunc(pattern, f)
		mux.HandleFunc(pattern+"/{$}", f)
	}
}

// route adapts a handler to ServeMux: gate runs first (nil: none) and answers alone when it
// returns a status; the request is then recorded with kind.
func (e *Emulator) route(kind string, gate, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status := 0
		if gate != nil {
			status = gate(w, r)
		}
		if status == 0 {
			status = h(w, r)
		}
		e.record(r, status, kind)
	}
}

// vaultHandler routes the TLS listener, which carries three APIs: the Key Vault data plane
// under /secrets, the admin API under /admin, and the Entra authority
// (/{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/oauth2/v2.0/token) for the
// rest. Each API has its own mux: the authority's /{tenant}/... patterns would overlap
// /secrets/ and /admin/ in one.
func (e *Emulator) vaultHandler() http.Handler {
	vault, admin := e.vaultRoutes(), e.adminRoutes()
	mux := http.NewServeMux()
	mux.Handle("/secrets", vault)
	mux.Handle("/secrets/", vault)
	mux.Handle("/admin", admin)
	mux.Handle("/admin/", admin)
	mux.Handle("/", e.authorityRoutes())
	return mux
}

// vaultRoutes is the Key Vault data plane. Every route, the 404 and 405 answers included, is
// behind vaultGate, so the order is the real service's: an outage, the bearer challenge,
// faults, the rate limit and the api-version check answer before the path is looked at.
func (e *Emulator) vaultRoutes() http.Handler {
	mux := http.NewServeMux()
	// azsecrets' GetSecret with an empty version sends /secrets/{name}/ (a trailing
	// slash); Key Vault treats it like /secrets/{name}, and so every path here.
	handle := e.slashTolerant(mux, "vault", e.vaultGate)
	handle("GET /secrets", noHead(e.listSecrets, methodNotAllowed))
	handle("/secrets", methodNotAllowed)
	handle("GET /secrets/{name}", noHead(func(w http.ResponseWriter, r *http.Request) int {
		return e.getSecret(w, r.PathValue("name"), "")
	}, methodNotAllowed))
	handle("PUT /secrets/{name}", func(w http.ResponseWriter, r *http.Request) int {
		return e.putSecret(w, r, r.PathValue("name"))
	})
	handle("/secrets/{name}", methodNotAllowed)
	handle("GET /secrets/{name}/versions", noHead(func(w http.ResponseWriter, r *http.Request) int {
		return e.listVersions(w, r, r.PathValue("name"))
	}, methodNotAllowed))
	handle("GET /secrets/{name}/{version}", noHead(func(w http.ResponseWriter, r *http.Request) int {
		return e.getSecret(w, r.PathValue("name"), r.PathValue("version"))
	}, methodNotAllowed))
	// Also the wrong methods of /secrets/{name}/versions.
	handle("/secrets/{name}/{version}", methodNotAllowed)
	mux.HandleFunc("/secrets/", e.route("vault", e.vaultGate, func(w http.ResponseWriter, r *http.Request) int {
		return kvError(w, http.StatusNotFound, "NotFound", "", "unknown Key Vault path "+r.URL.Path)
	}))
	return mux
}

// adminRoutes is the admin API. It is not behind the bearer challenge (tests and the demo
// drive it with curl), so every route is behind adminGate, which refuses a peer that is not
// loopback, in case the listener was somehow bound wider.
func (e *Emulator) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	// A trailing slash is the same path, as on the vault.
	handle := e.slashTolerant(mux, "admin", e.adminGate)
	notAllowed := func(allowed string) handler {
		return func(w http.ResponseWriter, r *http.Request) int { return adminMethod(w, r, allowed) }
	}
	// withName validates {name} first: a bad name is a 400 whatever the method.
	withName := func(h func(http.ResponseWriter, *http.Request, string) int) handler {
		return func(w http.ResponseWriter, r *http.Request) int {
			name := r.PathValue("name")
			if err := validateSecretName(name); err != nil {
				return adminError(w, http.StatusBadRequest, "BadParameter", err.Error())
			}
			return h(w, r, name)
		}
	}
	ok := func(w http.ResponseWriter) int { return writeJSON(w, http.StatusOK, map[string]any{}) }

	handle("GET /admin/requests", func(w http.ResponseWriter, _ *http.Request) int {
		return writeJSON(w, http.StatusOK, e.Requests())
	})
	handle("DELETE /admin/requests", func(w http.ResponseWriter, _ *http.Request) int { e.ResetRequests(); return ok(w) })
	handle("/admin/requests", notAllowed("GET, DELETE"))
	handle("GET /admin/rate-limit", func(w http.ResponseWriter, _ *http.Request) int {
		return writeJSON(w, http.StatusOK, e.RateStats())
	})
	handle("DELETE /admin/rate-limit", func(w http.ResponseWriter, _ *http.Request) int { e.ResetRateStats(); return ok(w) })
	handle("/admin/rate-limit", notAllowed("GET, DELETE"))
	for path, fault := range map[string]struct {
		set  func(Fault)
		slot *Fault
	}{"/admin/faults": {e.SetFault, &e.fault}, "/admin/identity-faults": {e.SetIdentityFault, &e.idFault}} {
		handle("PUT "+path, func(w http.ResponseWriter, r *http.Request) int { return e.adminSetFault(w, r, fault.set) })
		handle("GET "+path, func(w http.ResponseWriter, _ *http.Request) int {
			e.mu.Lock()
			f := *fault.slot
			e.mu.Unlock()
			return writeJSON(w, http.StatusOK, faultJSON{Mode: f.Mode.String(), RetryAfterSeconds: int(f.RetryAfter / time.Second), Count: f.Count})
		})
		handle(path, notAllowed("GET, PUT"))
	}
	handle("PUT /admin/tokens", e.adminSetTokens)
	handle("GET /admin/tokens", func(w http.ResponseWriter, _ *http.Request) int {
		return writeJSON(w, http.StatusOK, tokensStateJSON{LifetimeSeconds: int64(e.TokenLifetime() / time.Second), Queued: e.QueuedTokens()})
	})
	handle("/admin/tokens", notAllowed("GET, PUT"))
	handle("PUT /admin/secrets/{name}", withName(e.adminSetSecret))
	handle("DELETE /admin/secrets/{name}", withName(func(w http.ResponseWriter, _ *http.Request, name string) int {
		return e.adminResult(w, name, e.DeleteSecret(name))
	}))
	handle("/admin/secrets/{name}", withName(func(w http.ResponseWriter, r *http.Request, _ string) int {
		return adminMethod(w, r, "PUT, DELETE")
	}))
	handle("POST /admin/secrets/{name}/disable", withName(func(w http.ResponseWriter, _ *http.Request, name string) int {
		return e.adminResult(w, name, e.DisableSecret(name))
	}))
	handle("POST /admin/secrets/{name}/enable", withName(func(w http.ResponseWriter, _ *http.Request, name string) int {
		return e.adminResult(w, name, e.EnableSecret(name))
	}))
	for _, action := range []string{"disable", "enable"} {
		handle("/admin/secrets/{name}/"+action, withName(func(w http.ResponseWriter, r *http.Request, _ string) int {
			return adminMethod(w, r, "POST")
		}))
	}
	notFound := func(w http.ResponseWriter, r *http.Request) int {
		return adminError(w, http.StatusNotFound, "NotFound", "unknown admin path "+r.URL.Path+
			": use /admin/secrets/{name}, /admin/secrets/{name}/disable|enable, /admin/faults, /admin/identity-faults, /admin/tokens, /admin/rate-limit or /admin/requests")
	}
	// Both, or ServeMux would redirect /admin to /admin/.
	mux.HandleFunc("/admin", e.route("admin", e.adminGate, notFound))
	mux.HandleFunc("/admin/", e.route("admin", e.adminGate, notFound))
	return mux
}

// adminGate refuses any peer that is not loopback.
func (e *Emulator) adminGate(w http.ResponseWriter, r *http.Request) int {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return adminError(w, http.StatusForbidden, "Forbidden", "the admin API answers loopback peers only")
	}
	return 0
}

// authorityRoutes is the Entra authority MSAL talks to for workload identity.
func (e *Emulator) authorityRoutes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h handler) { mux.HandleFunc(pattern, e.route("token", nil, h)) }
	handle("GET /{tenant}/v2.0/.well-known/openid-configuration", noHead(e.handleOpenIDConfig, oauthMethod("GET")))
	handle("/{tenant}/v2.0/.well-known/openid-configuration", oauthMethod("GET"))
	handle("POST /{tenant}/oauth2/v2.0/token", e.handleEntraToken)
	handle("/{tenant}/oauth2/v2.0/token", oauthMethod("POST"))
	handle("/", func(w http.ResponseWriter, r *http.Request) int {
		return kvError(w, http.StatusNotFound, "NotFound", "", "unknown path "+r.URL.Path+
			": Key Vault is under /secrets, the admin API under /admin, the authority under /{tenant}/oauth2/v2.0/token")
	})
	return mux
}

// identityHandler routes the plain HTTP identity listener: App Service's managed identity
// endpoint and IMDS.
func (e *Emulator) identityHandler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h handler) { mux.HandleFunc(pattern, e.route("token", nil, h)) }
	handle("GET "+appServicePath, noHead(e.serveAppService, oauthMethod("GET")))
	handle(appServicePath, oauthMethod("GET"))
	handle("GET "+imdsPath, noHead(e.serveIMDS, oauthMethod("GET")))
	handle(imdsPath, oauthMethod("GET"))
	handle("/", func(w http.ResponseWriter, r *http.Request) int {
		return writeOAuthError(w, http.StatusNotFound, "invalid_request", "unknown path "+r.URL.Path+": the App Service endpoint is "+appServicePath+", IMDS is "+imdsPath)
	})
	return mux
}

// noHead answers HEAD with notAllowed: ServeMux hands HEAD to a GET pattern, and none of
// these endpoints serves HEAD.
func noHead(get, notAllowed handler) handler {
	return func(w http.ResponseWriter, r *http.Request) int {
		if r.Method == http.MethodHead {
			return notAllowed(w, r)
		}
		return get(w, r)
	}
}

// oauthMethod answers a method the endpoint does not take, in OAuth's error shape.
func oauthMethod(allowed string) handler {
	return func(w http.ResponseWriter, _ *http.Request) int {
		return writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use "+allowed)
	}
}
