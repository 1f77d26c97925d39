package caddymodule

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Provision compiles the keys file (or joins the already-loaded store for
// the same file) and registers metrics.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.now = time.Now
	h.counters = &counterCache{}
	h.limits = params.DefaultLimits()
	if h.MaxBodySize == 0 {
		h.MaxBodySize = defaultMaxBodySize
	}
	h.decision = gate.Config{
		ReportOnly:        h.Mode == "report",
		UnknownTokensPass: h.UnknownTokens == "pass",
		AnonymousPass:     h.Anonymous == "pass",
	}
	h.perKey = h.Metrics == nil || h.Metrics.PerKey == nil || *h.Metrics.PerKey
	if err := h.validateConfig(); err != nil {
		return err
	}
	// Build the shared catalogue tree now, not on the first request.
	matcher.CatalogueSet()
	if h.Database != "" {
		if err := h.provisionDatabase(ctx); err != nil {
			return err
		}
	} else if err := h.provisionKeysFile(); err != nil {
		return err
	}
	if err := h.provisionOAuth(ctx); err != nil {
		return err
	}
	if err := h.provisionConfine(ctx); err != nil {
		return err
	}
	return registerMetrics(ctx.GetMetricsRegistry())
}

// Cleanup releases this config's reference to the shared key store.
func (h *Handler) Cleanup() error {
	h.cleanupConfine()
	if h.fleetKey != "" {
		return h.cleanupDatabase()
	}
	if h.poolKey != "" {
		_, err := keystores.Delete(h.poolKey)
		return err
	}
	return nil
}

// provisionKeysFile compiles the keys file, or joins the already-loaded
// store for the same file.
func (h *Handler) provisionKeysFile() error {
	interval := defaultReloadInterval
	if h.ReloadInterval != nil {
		interval = time.Duration(*h.ReloadInterval)
	}
	path, err := filepath.Abs(h.KeysFile)
	if err != nil {
		return fmt.Errorf("keys_file: %v", err)
	}
	parse := policy.ParseOptions{AllowUnknownScopes: h.AllowUnknownScopes}
	if h.CatalogueFile != "" {
		if parse.Catalogue, err = loadCatalogueFile(h.CatalogueFile); err != nil {
			return fmt.Errorf("catalogue_file: %v", err)
		}
	}
	h.poolKey = keystoreID(path, parse, interval)
	v, loaded, err := keystores.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		return openKeystore(path, parse, interval)
	})
	if err != nil {
		return err
	}
	h.keystore = v.(*keystore)
	if loaded {
		// `caddy reload --force` must pick up an edited keys file even
		// when the config itself is unchanged.
		if _, err := h.keystore.reload(false); err != nil {
			return err
		}
	}
	return nil
}
