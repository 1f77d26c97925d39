package caddymodule

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/confine"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler holds every request that carries a registered gateway token to its
// Canvas developer key's scopes, exactly as Canvas would, before the request
// reaches reverse_proxy. Allowed requests are forwarded with the canonical
// path Canvas matches on, with disallowed include params removed and, when
// the key has an upstream_token, with the client's credential replaced.
//
// It sets the placeholders {http.canvas_scopes.developer_key},
// {http.canvas_scopes.token_id}, {http.canvas_scopes.decision} and
// {http.canvas_scopes.scope}.
type Handler struct {
	// KeysFile is the path of the JSON keys file (developer keys, token
	// hashes, clients). Required unless database is set.
	KeysFile string `json:"keys_file,omitempty"`

	// FleetConfig: database, max_staleness, stale_policy, snapshot_file
	// (see fleet.go).
	FleetConfig

	// UnknownTokens says what to do with a credential that is not in the
	// keys file: "deny" (401 Invalid access token.) or "pass" (forward it
	// untouched, for a transparent front where Canvas checks its own
	// tokens). Default: deny.
	UnknownTokens string `json:"unknown_tokens,omitempty"`

	// Anonymous says what to do with a request on an /api/ path that has
	// no credential: "deny" (Canvas's 401 user authorization required) or
	// "pass". Default: deny.
	Anonymous string `json:"anonymous,omitempty"`

	// AllowUnknownScopes accepts scopes missing from the embedded Canvas
	// catalogue (newer Canvas versions, plugins). Default: false.
	AllowUnknownScopes bool `json:"allow_unknown_scopes,omitempty"`

	// CatalogueFile validates the keys file's scopes against this
	// catalogue (one scope a line, # comments; see `caddy canvas-scopes
	// catalogue fetch`) instead of the embedded one.
	CatalogueFile string `json:"catalogue_file,omitempty"`

	// ReloadInterval is how often the keys file is checked for changes.
	// 0 turns polling off; negative is invalid. Default: 2s.
	ReloadInterval *caddy.Duration `json:"reload_interval,omitempty"`

	// MaxBodySize is the largest form, multipart or JSON body the gate
	// reads to find credentials and include params; larger bodies get 413.
	// Default: 10MB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// Mode is "enforce" (default) or "report": in report mode every
	// decision is made, logged and counted (would_deny), but requests are
	// forwarded without denial or include filtering.
	Mode string `json:"mode,omitempty"`

	// LogAllowed is the fraction (0 to 1) of allowed requests to log.
	// Denials are always logged. Default: 0.
	LogAllowed float64 `json:"log_allowed,omitempty"`

	// Metrics controls metric labels.
	Metrics *MetricsConfig `json:"metrics,omitempty"`

	// TokenSigningKeys turn on machine-to-machine access: the
	// client_credentials grant for the keys file's clients, gateway
	// tokens, introspection and revocation. Each key is usually an
	// {env.*} or {file.*} placeholder resolved in Provision and must be
	// at least 32 bytes. The first key signs; all keys verify.
	TokenSigningKeys []string `json:"token_signing_keys,omitempty"`

	// CanvasAPI is the Canvas that account confinement asks, with its own
	// token (see confine.go). Required when a key has accounts.
	CanvasAPI *CanvasAPIConfig `json:"canvas_api,omitempty"`

	keystore *keystore
	poolKey  string
	logger   *zap.Logger
	decision gate.Config
	perKey   bool
	limits   params.Limits
	now      func() time.Time
	counters *counterCache
	oauth    *oauthGate
	confiner *confine.Confiner
}

// MetricsConfig controls the gate's Prometheus labels.
type MetricsConfig struct {
	// PerKey labels request and include metrics with the developer key
	// id. Turn it off for very many keys. Default: true.
	PerKey *bool `json:"per_key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.canvas_scopes",
		New: func() caddy.Module { return new(Handler) },
	}
}

const (
	defaultReloadInterval = 2 * time.Second
	defaultMaxBodySize    = 10 << 20
)

func (h *Handler) validateConfig() error {
	if (h.KeysFile == "") == (h.Database == "") {
		return errors.New("canvas_scopes: exactly one of keys_file and database is required")
	}
	for name, v := range map[string]string{"unknown_tokens": h.UnknownTokens, "anonymous": h.Anonymous} {
		if v != "" && v != "deny" && v != "pass" {
			return fmt.Errorf("canvas_scopes: %s must be deny or pass, got %q", name, v)
		}
	}
	if h.Mode != "" && h.Mode != "enforce" && h.Mode != "report" {
		return fmt.Errorf("canvas_scopes: mode must be enforce or report, got %q", h.Mode)
	}
	if h.ReloadInterval != nil && *h.ReloadInterval < 0 {
		return errors.New("canvas_scopes: reload_interval must not be negative (0 turns polling off)")
	}
	if h.MaxBodySize < 0 {
		return errors.New("canvas_scopes: max_body_size must be positive")
	}
	if h.LogAllowed < 0 || h.LogAllowed > 1 {
		return fmt.Errorf("canvas_scopes: log_allowed must be between 0 and 1, got %v", h.LogAllowed)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
