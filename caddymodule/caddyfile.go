package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("canvas_scopes", parseCaddyfile)
	// After basic_auth, not "before reverse_proxy": that would land after
	// respond, which comes earlier in Caddy's directive order, and never run.
	httpcaddyfile.RegisterDirectiveOrder("canvas_scopes", httpcaddyfile.After, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m Handler
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return &m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	canvas_scopes {
//	    keys_file <path>             # this, or database
//	    database <dsn>               # shared PostgreSQL store; use {env.*} or {file.*}
//	    max_staleness <duration>     # database: default off
//	    stale_policy serve|deny      # database: default serve
//	    snapshot_file <path>         # database: start from it while the database is down
//	    unknown_tokens deny|pass     # default deny
//	    anonymous deny|pass          # default deny
//	    allow_unknown_scopes
//	    catalogue_file <path>        # validate scopes against this catalogue
//	    reload_interval <duration>   # default 2s; 0 turns polling off
//	    max_body_size <size>         # default 10MB
//	    mode enforce|report          # default enforce
//	    log_allowed <ratio>          # default 0
//	    metrics {
//	        per_key on|off           # default on
//	    }
//	    token_signing_keys <key> [<key>...]  # turns on OAuth client_credentials; first signs, all verify
//	}
//
// Placeholders are not expanded here; secrets are resolved in Provision.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "keys_file":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.KeysFile = d.Val()
		case "database", "max_staleness", "stale_policy", "snapshot_file":
			if err := h.unmarshalFleetOption(d); err != nil {
				return err
			}
		case "unknown_tokens", "anonymous", "mode":
			name := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			v := d.Val()
			allowed := map[string][2]string{"unknown_tokens": {"deny", "pass"}, "anonymous": {"deny", "pass"}, "mode": {"enforce", "report"}}[name]
			if v != allowed[0] && v != allowed[1] {
				return d.Errf("%s must be %s or %s, got %q", name, allowed[0], allowed[1], v)
			}
			switch name {
			case "unknown_tokens":
				h.UnknownTokens = v
			case "anonymous":
				h.Anonymous = v
			case "mode":
				h.Mode = v
			}
		case "allow_unknown_scopes":
			h.AllowUnknownScopes = true
		case "catalogue_file":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.CatalogueFile = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "reload_interval":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur < 0 {
				return d.Errf("reload_interval must be a duration such as 2s (0 turns polling off), got %q", d.Val())
			}
			cd := caddy.Duration(dur)
			h.ReloadInterval = &cd
		case "max_body_size":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil || size == 0 {
				return d.Errf("max_body_size must be a size such as 10MB, got %q", d.Val())
			}
			h.MaxBodySize = int64(size)
		case "log_allowed":
			if !d.NextArg() {
				return d.ArgErr()
			}
			f, err := strconv.ParseFloat(d.Val(), 64)
			if err != nil || f < 0 || f > 1 {
				return d.Errf("log_allowed must be a ratio between 0 and 1, got %q", d.Val())
			}
			h.LogAllowed = f
		case "token_signing_keys":
			keys := d.RemainingArgs()
			if len(keys) == 0 {
				return d.Err("token_signing_keys needs at least one key, such as {env.CANVAS_SCOPES_SIGNING_KEY}")
			}
			h.TokenSigningKeys = append(h.TokenSigningKeys, keys...)
		case "canvas_api":
			c, err := parseCanvasAPI(d)
			if err != nil {
				return err
			}
			h.CanvasAPI = c
			continue
		case "metrics":
			if h.Metrics == nil {
				h.Metrics = &MetricsConfig{}
			}
			for d.NextBlock(1) {
				switch d.Val() {
				case "per_key":
					if !d.NextArg() {
						return d.ArgErr()
					}
					on, err := parseOnOff(d.Val())
					if err != nil {
						return d.Errf("per_key must be on or off, got %q", d.Val())
					}
					h.Metrics.PerKey = &on
				default:
					return d.Errf("unknown metrics option %q (known: per_key)", d.Val())
				}
			}
		default:
			return d.Errf("unknown canvas_scopes option %q (known: keys_file, database, max_staleness, stale_policy, snapshot_file, unknown_tokens, anonymous, allow_unknown_scopes, catalogue_file, reload_interval, max_body_size, mode, log_allowed, metrics, token_signing_keys, canvas_api)", d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	if (h.KeysFile == "") == (h.Database == "") {
		return d.Err("exactly one of keys_file and database is required")
	}
	return nil
}

func parseOnOff(s string) (bool, error) {
	switch s {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, strconv.ErrSyntax
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
