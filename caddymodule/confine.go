package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/confine"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Canvas's own body for a permission failure, and a Canvas-shaped 503.
var (
	bodyOutsideAccounts = []byte(`{"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}`)
	bodyLookupFailed    = []byte(`{"errors":[{"message":"The gate could not check which account this request touches; try again later."}]}`)
)

// lookupRetryAfter is the Retry-After of a 503 for a failed look-up.
const lookupRetryAfter = "5"

// CanvasAPIConfig is the canvas_api block: the Canvas the confinement asks
// which account an object belongs to, with its own token.
type CanvasAPIConfig struct {
	// URL is the Canvas origin, such as https://canvas.example.edu.
	URL string `json:"url"`
	// Token is an {env.*} or {file.*} placeholder for an admin token that
	// can read accounts, courses, sections and groups. It is resolved in
	// Provision, so only the placeholder is in the config.
	Token string `json:"token"`
	// CacheTTL keeps look-up answers this long. Default: 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
	// Timeout bounds one look-up. Default: 3s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// CacheSize bounds the number of objects kept. Default: 100000.
	CacheSize int `json:"cache_size,omitempty"`
}

// parseCanvasAPI reads `canvas_api URL { token …; cache_ttl 5m; timeout 3s; cache_size N }`.
func parseCanvasAPI(d *caddyfile.Dispenser) (*CanvasAPIConfig, error) {
	c := &CanvasAPIConfig{}
	if !d.NextArg() {
		return nil, d.Err("canvas_api needs the Canvas URL, such as canvas_api https://canvas.example.edu { token {env.CANVAS_LOOKUP_TOKEN} }")
	}
	c.URL = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(1) {
		opt := d.Val()
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		v := d.Val()
		switch opt {
		case "token":
			c.Token = v
		case "cache_ttl", "timeout":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("canvas_api %s must be a positive duration, got %q", opt, v)
			}
			if opt == "cache_ttl" {
				c.CacheTTL = caddy.Duration(dur)
			} else {
				c.Timeout = caddy.Duration(dur)
			}
		case "cache_size":
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 {
				return nil, d.Errf("canvas_api cache_size must be a positive number, got %q", v)
			}
			c.CacheSize = n
		default:
			return nil, d.Errf("unknown canvas_api option %q (known: token, cache_ttl, timeout, cache_size)", opt)
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	return c, nil
}

// confiners are the live confinement steps, for the admin purge.
var confiners sync.Map // *confine.Confiner -> struct{}

// provisionConfine builds the confinement step when canvas_api is set, and
// refuses a config whose keys file confines a key without it.
func (h *Handler) provisionConfine(ctx caddy.Context) error {
	if h.CanvasAPI == nil {
		if store := h.keystore.current.Load(); store != nil {
			for _, k := range store.Keys() {
				if k.Confined() {
					return fmt.Errorf("canvas_scopes: developer key %q is confined to accounts, which needs a canvas_api block (the Canvas and the token to look objects up with)", k.ID)
				}
			}
		}
		return nil
	}
	c := h.CanvasAPI
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return errors.New("canvas_scopes: canvas_api: the URL must be a Canvas origin such as https://canvas.example.edu")
	}
	if !isPlaceholder(c.Token) {
		return errors.New("canvas_scopes: canvas_api: token must be an {env.*} or {file.*} placeholder, so the secret is not in the config")
	}
	token, err := resolveSecret(c.Token)
	if err != nil {
		return fmt.Errorf("canvas_scopes: canvas_api: token: %v", err)
	}
	api := confine.NewCanvasAPI(u.Scheme+"://"+u.Host, token, time.Duration(c.Timeout))
	h.confiner = confine.New(api, time.Duration(c.CacheTTL), c.CacheSize)
	h.confiner.OnLookup = observeLookup
	confiners.Store(h.confiner, struct{}{})
	return registerConfineMetrics(ctx.GetMetricsRegistry())
}

// cleanupConfine forgets this handler's confinement step.
func (h *Handler) cleanupConfine() {
	if h.confiner != nil {
		confiners.Delete(h.confiner)
	}
}

// lookUpAccounts is the confinement step of an allowed request of a
// confined key: it asks the confiner (cache, then Canvas) which accounts
// the request's objects belong to.
func (h *Handler) lookUpAccounts(ctx context.Context, f *gate.Facts, v *gate.Verdict) confine.Result {
	if h.confiner == nil {
		// The keys file was reloaded with a confined key after a config
		// without canvas_api: nobody can tell, so nothing goes through.
		return confine.Result{Outcome: confine.Failed, Reason: "no canvas_api is configured", Err: errors.New("no canvas_api")}
	}
	key := v.Key()
	return h.confiner.Check(ctx, &confine.Request{
		Scope: v.Policy.Scope, Unconfined: key.Unconfined(v.Policy.Scope), Path: f.Path,
		Params: f.Params, Roots: key.Accounts, Now: f.Now,
	})
}

// confinementFields are the log fields of a request the confinement kept
// out: the parameter, the id (bounded and escaped) and the account it
// resolved to.
func confinementFields(res *confine.Result) []zap.Field {
	fields := []zap.Field{zap.String("parameter", logExcerpt(res.Ref.Param)),
		zap.String("id", logExcerpt(res.Ref.ID)), zap.String("account", res.Account)}
	if res.Err != nil {
		fields = append(fields, zap.String("error", res.Err.Error()))
	}
	return fields
}

// Confinement metrics.
var (
	confineLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "account_lookups_total",
		Help: "Look-ups of objects on Canvas for account confinement, by kind and result (found, not_found, failed).",
	}, []string{"kind", "result"})
	confineLookupSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "account_lookup_seconds",
		Help:    "Latency of look-ups on Canvas for account confinement.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	confineCache = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "account_cache_hits_total",
		Help: "Account confinement cache hits.",
	}, func() float64 { return float64(sumCacheStats().Hits) })
	confineCacheMisses = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "canvas_scopes", Name: "account_cache_misses_total",
		Help: "Account confinement cache misses (each a look-up or a wait for one).",
	}, func() float64 { return float64(sumCacheStats().Misses) })
)

func sumCacheStats() confine.Stats {
	var s confine.Stats
	confiners.Range(func(k, _ any) bool {
		st := k.(*confine.Confiner).Cache.Stats()
		s.Hits += st.Hits
		s.Misses += st.Misses
		s.Items += st.Items
		return true
	})
	return s
}

func observeLookup(kind confine.Kind, result string, d time.Duration) {
	confineLookups.WithLabelValues(kind.String(), result).Inc()
	confineLookupSeconds.Observe(d.Seconds())
}

func registerConfineMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{confineLookups, confineLookupSeconds, confineCache, confineCacheMisses} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// handleLookupCachePurge empties every confinement cache.
func handleLookupCachePurge(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed; use POST", r.Method)}
	}
	n := 0
	confiners.Range(func(k, _ any) bool {
		k.(*confine.Confiner).Cache.Purge()
		n++
		return true
	})
	return writeAdminJSON(w, http.StatusOK, map[string]int{"purged_caches": n})
}

// explainConfinement says, for `explain`, what the confinement step would
// look up for an allowed request (explain itself asks Canvas nothing).
func explainConfinement(key *policy.Key, scope, canonical string, insp *params.Inspection) string {
	var b strings.Builder
	fmt.Fprintf(&b, "confined to %s", strings.Join(key.Accounts, ", "))
	if scope == "" {
		return b.String()
	}
	var refs []confine.Ref
	if key.Unconfined(scope) {
		b.WriteString("; the scope is in unconfined_scopes")
	} else if r := (&confine.Confiner{}).RouteOf(scope); !r.Confinable() {
		fmt.Fprintf(&b, "; the route has no account context (%s): denied as outside_accounts", r.NoContext)
		return b.String()
	} else {
		refs = r.PathRefs(nil, canonical)
	}
	refs = append(refs, confine.MoveRefs(insp)...)
	if len(refs) == 0 {
		b.WriteString("; nothing to look up")
		return b.String()
	}
	b.WriteString("; at request time Canvas is asked about")
	for i, ref := range refs {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %q (%q)", ref.Kind, logExcerpt(ref.ID), logExcerpt(ref.Param))
	}
	b.WriteString(", each of which must lie inside those accounts")
	return b.String()
}
