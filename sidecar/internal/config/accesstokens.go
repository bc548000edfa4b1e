package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// AccessTokens configures GetAccessToken.
type AccessTokens struct {
	// Scopes is the allowlist; empty turns GetAccessToken off.
	Scopes []string `yaml:"scopes"`
	// RefreshBefore is how long before a token's expiry the sidecar fetches
	// the next one in the background.
	RefreshBefore Duration `yaml:"refreshBefore"`
}

// Bounds of accessTokens.
const (
	// minRefreshBefore keeps the background refresh ahead of the 1-minute
	// window in which a token is no longer served, with a minute to spare.
	minRefreshBefore = 2 * time.Minute
	// maxRefreshBefore: Entra access tokens live 60 to 90 minutes, so
	// refreshing more than an hour ahead would refresh on every fetch.
	maxRefreshBefore = time.Hour
	// maxScopes bounds the allowlist (and with it the metric series per scope).
	maxScopes = 20
	// MaxScopeLen bounds one scope.
	MaxScopeLen = 256
)

// ValidScope reports whether s is a scope the sidecar accepts: an Entra
// client-credentials scope, that is an https:// resource URI with a host, or
// an api:// application ID URI, ending in "/.default"; at most 256 bytes of
// printable ASCII, no whitespace, no query or fragment.
func ValidScope(s string) bool {
	if len(s) == 0 || len(s) > MaxScopeLen || !strings.HasSuffix(s, "/.default") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '?' || s[i] == '#' {
			return false
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return u.Host != "" && u.User == nil
	case "api":
		return u.Host != "" || u.Opaque != ""
	}
	return false
}

// validate checks the accessTokens section.
func (at AccessTokens) validate(ps *Problems) {
	if len(at.Scopes) > maxScopes {
		ps.add("accessTokens.scopes", "at most %d scopes, got %d", maxScopes, len(at.Scopes))
	}
	seen := make(map[string]int, len(at.Scopes))
	for i, s := range at.Scopes {
		p := fmt.Sprintf("accessTokens.scopes[%d]", i)
		if !ValidScope(s) {
			ps.add(p, "%q is not a scope: use an https:// resource or api:// application ID URI ending in /.default, e.g. https://database.windows.net/.default (at most %d characters, no spaces)", truncateScope(s), MaxScopeLen)
			continue
		}
		if j, dup := seen[s]; dup {
			ps.add(p, "%q is already declared at accessTokens.scopes[%d]", s, j)
			continue
		}
		seen[s] = i
	}
	if rb := at.RefreshBefore.D(); rb < minRefreshBefore || rb > maxRefreshBefore {
		ps.add("accessTokens.refreshBefore", "must be from %s to %s (tokens are not served in their last minute), got %s", minRefreshBefore, maxRefreshBefore, rb)
	}
}

func truncateScope(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
