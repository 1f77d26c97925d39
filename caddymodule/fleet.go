package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/fleet"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/oauth"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// FleetConfig is the part of the handler's configuration for running as a
// fleet on a shared PostgreSQL database instead of a keys file. It is
// embedded in Handler, so its fields are handler options.
type FleetConfig struct {
	// Database is the PostgreSQL DSN of the shared store, used instead
	// of keys_file (exactly one of the two). It is a secret: write it as
	// an {env.*} or {file.*} placeholder, resolved in Provision, so that
	// it never appears in the config API or in logs.
	Database string `json:"database,omitempty"`

	// MaxStaleness is how old the last successful sync may get before
	// stale_policy applies. 0 (default) turns the check off.
	MaxStaleness caddy.Duration `json:"max_staleness,omitempty"`

	// StalePolicy is "serve" (default: keep serving the last good
	// snapshot) or "deny" (refuse credentialed requests with 503 once
	// the snapshot is older than max_staleness).
	StalePolicy string `json:"stale_policy,omitempty"`

	// SnapshotFile, if set, receives the last synced state (mode 0600,
	// written atomically; token hashes only) and lets an instance that
	// starts while the database is down serve it.
	SnapshotFile string `json:"snapshot_file,omitempty"`

	fleetKey string
	fleetSrc *fleetSource
}

// fleetSources holds one syncer (one listener connection) and one small
// write pool per DSN and snapshot file, shared by every handler and kept
// across `caddy reload`.
var fleetSources = caddy.NewUsagePool()

// fleetSource feeds a keystore's atomic pointer from the database, so the
// decision code reads a *policy.Store the same way for both sources.
type fleetSource struct {
	ks     *keystore
	syncer *fleet.Syncer
	dsn    string
	label  string // short hash of the DSN, for metrics and logs

	poolOnce sync.Once
	pool     *pgxpool.Pool
	poolErr  error
}

func (f *fleetSource) Destruct() error {
	leaveSharedUsage(f)
	f.syncer.Close()
	if f.pool != nil {
		f.pool.Close()
	}
	return nil
}

// writePool is a small pool for the gate's own writes (OAuth
// revocations), opened on first use.
func (f *fleetSource) writePool() (*pgxpool.Pool, error) {
	f.poolOnce.Do(func() {
		if _, err := fleet.ParseDSN(f.dsn); err != nil {
			f.poolErr = err
			return
		}
		cfg, err := pgxpool.ParseConfig(f.dsn)
		if err != nil {
			f.poolErr = errors.New("the database DSN cannot be parsed")
			return
		}
		cfg.MaxConns = 4
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
		f.pool, f.poolErr = pgxpool.NewWithConfig(context.Background(), cfg)
	})
	return f.pool, f.poolErr
}

// dsnHasLiteralPassword reports a DSN written with its password in the
// config itself, where /config/ would show it.
func dsnHasLiteralPassword(raw string) bool {
	if strings.Contains(raw, "{env.") || strings.Contains(raw, "{file.") {
		return false
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return strings.Contains(raw, "password=")
}

// provisionDatabase joins (or starts) the shared syncer for the resolved
// DSN and points the handler's keystore at its store.
func (h *Handler) provisionDatabase(ctx caddy.Context) error {
	switch h.StalePolicy {
	case "", "serve", "deny":
	default:
		return fmt.Errorf("canvas_scopes: stale_policy must be serve or deny, got %q", h.StalePolicy)
	}
	if h.MaxStaleness < 0 {
		return errors.New("canvas_scopes: max_staleness must not be negative")
	}
	if h.StalePolicy == "deny" && h.MaxStaleness == 0 {
		return errors.New("canvas_scopes: stale_policy deny needs max_staleness")
	}
	if dsnHasLiteralPassword(h.Database) {
		return errors.New("canvas_scopes: database: the DSN carries a password; write it as {env.NAME} or {file.PATH} so it stays out of the config")
	}
	dsn, err := resolveSecret(h.Database)
	if err != nil {
		return fmt.Errorf("canvas_scopes: database: %v", err)
	}
	if _, err := fleet.ParseDSN(dsn); err != nil {
		return fmt.Errorf("canvas_scopes: database: %v", err)
	}
	snapshot := h.SnapshotFile
	if snapshot != "" {
		if snapshot, err = filepath.Abs(snapshot); err != nil {
			return fmt.Errorf("canvas_scopes: snapshot_file: %v", err)
		}
	}
	sum := sha256.Sum256([]byte(dsn))
	label := hex.EncodeToString(sum[:4])
	h.fleetKey = fmt.Sprintf("database|%x|snapshot=%s|unknown_scopes=%t", sum, snapshot, h.AllowUnknownScopes)
	logger := caddy.Log().Named("canvas_scopes").With(zap.String("database", label))
	v, _, err := fleetSources.LoadOrNew(h.fleetKey, func() (caddy.Destructor, error) {
		src := &fleetSource{ks: &keystore{path: "database:" + label, stop: make(chan struct{})}, dsn: dsn, label: label}
		s, err := fleet.Start(context.Background(), fleet.Options{
			DSN:          dsn,
			Compile:      policy.CompileOptions{ResolveSecret: resolveSecret},
			SnapshotFile: snapshot,
			Logger:       logger,
			OnStore: func(st *policy.Store) {
				src.ks.current.Store(st)
				src.ks.loadedAt.Store(time.Now().UnixNano())
			},
			OnRevocations: func(revs []fleet.OAuthRevocation) {
				now := time.Now()
				for _, r := range revs {
					if err := revocations.Add(r.ClientID, r.ID, r.ExpiresAt, now); err != nil {
						logger.Error("cannot hold a stored OAuth revocation", zap.Error(err))
					}
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("canvas_scopes: database: %v", err)
		}
		src.syncer = s
		joinSharedUsage(src, logger)
		return src, nil
	})
	if err != nil {
		h.fleetKey = ""
		return err
	}
	h.fleetSrc = v.(*fleetSource)
	h.keystore = h.fleetSrc.ks
	return registerFleetMetrics(ctx.GetMetricsRegistry())
}

// cleanupDatabase releases this config's reference to the shared syncer.
func (h *Handler) cleanupDatabase() error {
	if h.fleetKey == "" {
		return nil
	}
	_, err := fleetSources.Delete(h.fleetKey)
	return err
}

// stale reports whether stale_policy deny applies now: the last
// successful sync is older than max_staleness.
func (h *Handler) stale(now time.Time) bool {
	if h.fleetSrc == nil || h.StalePolicy != "deny" || h.MaxStaleness <= 0 {
		return false
	}
	return now.Sub(h.fleetSrc.syncer.Stats().LastSync) > time.Duration(h.MaxStaleness)
}

// storeRevocation stores an OAuth revocation in the database, so every
// instance refuses the token; without a database it does nothing. A
// revocation is never acknowledged unless this returned nil.
func (h *Handler) storeRevocation(ctx context.Context, c *oauth.Claims) error {
	if h.fleetSrc == nil {
		return nil
	}
	pool, err := h.fleetSrc.writePool()
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = fleet.AddOAuthRevocation(ctx, pool, c.ID, c.ClientID, c.ExpiresAt)
		cancel()
	}
	if err != nil {
		h.oauthLog(zap.ErrorLevel, "oauth revocation not stored in the database", c.ClientID, zap.String("token_id", c.ShortID()), zap.Error(err))
	}
	return err
}

// msgRevocationNotStored answers a revocation the database did not store.
const msgRevocationNotStored = "the revocation could not be stored; try again"

// shareRevocation is storeRevocation for the RFC 7009 endpoint: on failure
// it answers 503 temporarily_unavailable and reports false.
func (h *Handler) shareRevocation(w http.ResponseWriter, r *http.Request, c *oauth.Claims) bool {
	if err := h.storeRevocation(r.Context(), c); err != nil {
		w.Header().Set("Retry-After", "5")
		writeOAuthError(w, &oauth.Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: msgRevocationNotStored})
		return false
	}
	return true
}

// unmarshalFleetOption reads one of the database options of the
// canvas_scopes Caddyfile block; the dispenser is on the option's name.
func (h *Handler) unmarshalFleetOption(d *caddyfile.Dispenser) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	v := d.Val()
	switch name {
	case "database":
		h.Database = v
	case "snapshot_file":
		h.SnapshotFile = v
	case "stale_policy":
		if v != "serve" && v != "deny" {
			return d.Errf("stale_policy must be serve or deny, got %q", v)
		}
		h.StalePolicy = v
	case "max_staleness":
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur < 0 {
			return d.Errf("max_staleness must be a duration such as 30s, got %q", v)
		}
		h.MaxStaleness = caddy.Duration(dur)
	}
	return nil
}
