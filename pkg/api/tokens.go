package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Tokens lists the API tokens of the TCP listener (GET /v1/tokens).
type Tokens struct {
	Tokens []Token `json:"tokens"`
}

// Token describes one configured API token; the token itself is never
// shown, nor its whole hash.
type Token struct {
	Name string `json:"name"`
	// SHA256Prefix is the first 12 hex digits of the token's hash, to
	// tell which [[tokens]] entry it is.
	SHA256Prefix  string  `json:"sha256_prefix"`
	RatePerMinute float64 `json:"rate_per_minute"`
	Burst         int     `json:"burst"`
	MaxConcurrent int     `json:"max_concurrent"`
	// InUse counts the sandboxes its requests hold now.
	InUse int `json:"in_use"`
	// LastUsed is when a request last carried it, since runtimed started.
	LastUsed *time.Time `json:"last_used,omitempty"`
	// Sessions counts its open sessions.
	Sessions int `json:"sessions"`
	// Revoked: runtimectl token revoke refused it from then on; it stays
	// refused, across reloads and restarts, until its entry is removed
	// and a new token made.
	Revoked   bool       `json:"revoked"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// SessionsEnded counts the sessions a revocation ended (in the
	// answer to DELETE /v1/tokens/{name}).
	SessionsEnded int `json:"sessions_ended,omitempty"`
}

// Tokens lists the configured API tokens (root on the unix socket).
func (c *Client) Tokens(ctx context.Context) (*Tokens, error) {
	var out Tokens
	return &out, c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out)
}

// RevokeToken revokes the token name at once: its requests are refused
// from then on and its sessions end (root on the unix socket).
func (c *Client) RevokeToken(ctx context.Context, name string) (*Token, error) {
	var out Token
	return &out, c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, &out)
}
