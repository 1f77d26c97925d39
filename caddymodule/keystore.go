package caddymodule

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// keystores holds one keystore per (file, options) across config reloads, so
// a `caddy reload` neither re-reads nor drops the compiled store.
var keystores = caddy.NewUsagePool()

// keystore owns the current compiled Store for one keys file and keeps it
// fresh. Reloads compile off the hot path and swap a pointer.
type keystore struct {
	path     string
	parse    policy.ParseOptions
	interval time.Duration

	current  atomic.Pointer[policy.Store]
	loadedAt atomic.Int64 // unix nanos of the last successful load

	mu       sync.Mutex // serialises reloads
	lastSize int64
	lastMod  time.Time
	lastHash [32]byte

	stop chan struct{}
	once sync.Once
}

func keystoreID(path string, parse policy.ParseOptions, interval time.Duration) string {
	return fmt.Sprintf("%s|unknown_scopes=%t|interval=%s|catalogue=%s", path, parse.AllowUnknownScopes, interval, parse.Catalogue.ID())
}

// openKeystore loads the file once (failing if it is missing or bad) and
// starts polling when interval > 0.
func openKeystore(path string, parse policy.ParseOptions, interval time.Duration) (*keystore, error) {
	ks := &keystore{path: path, parse: parse, interval: interval, stop: make(chan struct{})}
	if _, err := ks.reload(true); err != nil {
		return nil, err
	}
	if interval > 0 {
		go ks.poll()
	}
	return ks, nil
}

// Destruct stops polling when the last config using this file is gone.
func (ks *keystore) Destruct() error {
	ks.once.Do(func() {
		close(ks.stop)
		// Drop the file's gauges unless another live keystore (same file,
		// other options) still reports them.
		shared := false
		forEachKeystore(func(o *keystore) { shared = shared || o.path == ks.path })
		if !shared {
			storeKeys.DeleteLabelValues(ks.path)
			storeTokens.DeleteLabelValues(ks.path)
			lastReloadSuccess.DeleteLabelValues(ks.path)
		}
	})
	return nil
}

func (ks *keystore) poll() {
	t := time.NewTicker(ks.interval)
	defer t.Stop()
	for {
		select {
		case <-ks.stop:
			return
		case <-t.C:
			if _, err := ks.reload(false); err != nil {
				caddy.Log().Named("canvas_scopes").Error("keys file reload failed; keeping the last good store",
					zap.String("keys_file", ks.path), zap.Error(err))
			}
		}
	}
}

// reload re-reads the file when its size, mtime or content hash changed
// (or always, when force is set), compiles it and swaps it in. On any error
// the previous store stays in place.
func (ks *keystore) reload(force bool) (changed bool, err error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	fi, err := os.Stat(ks.path)
	if err != nil {
		reloadsTotal.WithLabelValues("error").Inc()
		return false, fmt.Errorf("keys file: %w", err)
	}
	if !force && fi.Size() == ks.lastSize && fi.ModTime().Equal(ks.lastMod) {
		return false, nil
	}
	started := time.Now()
	data, err := os.ReadFile(ks.path)
	if err != nil {
		reloadsTotal.WithLabelValues("error").Inc()
		return false, fmt.Errorf("keys file: %w", err)
	}
	sum := sha256.Sum256(data)
	if !force && bytes.Equal(sum[:], ks.lastHash[:]) {
		ks.lastSize, ks.lastMod = fi.Size(), fi.ModTime()
		return false, nil
	}
	store, err := policy.Load(ks.path, data, ks.parse, policy.CompileOptions{ResolveSecret: resolveSecret})
	if err != nil {
		// Remember the broken version so polling reports it once, not on
		// every tick, until the file changes again.
		ks.lastSize, ks.lastMod = fi.Size(), fi.ModTime()
		reloadsTotal.WithLabelValues("error").Inc()
		return false, err
	}
	ks.lastSize, ks.lastMod, ks.lastHash = fi.Size(), fi.ModTime(), sum
	ks.current.Store(store)
	loadTime := time.Since(started)
	ks.loadedAt.Store(time.Now().UnixNano())
	if len(data) > 1<<20 {
		// Parsing a large file allocates many times the store's size;
		// hand that back to the OS now rather than keep it resident.
		data = nil
		debug.FreeOSMemory()
	}
	reloadsTotal.WithLabelValues("success").Inc()
	lastReloadSuccess.WithLabelValues(ks.path).SetToCurrentTime()
	storeKeys.WithLabelValues(ks.path).Set(float64(len(store.Keys())))
	storeTokens.WithLabelValues(ks.path).Set(float64(store.TokenCount()))
	caddy.Log().Named("canvas_scopes").Info("keys file loaded",
		zap.String("keys_file", ks.path),
		zap.Int("developer_keys", len(store.Keys())),
		zap.Int("tokens", store.TokenCount()),
		zap.Duration("load_time", loadTime)) // read, parse, validate, compile
	return true, nil
}

// resolveSecret expands {env.*} and {file.*} in upstream_token. Errors name
// the placeholder, never a value.
func resolveSecret(s string) (string, error) {
	v, err := caddy.NewReplacer().ReplaceOrErr(s, true, true)
	if err != nil {
		return "", fmt.Errorf("cannot resolve %s: %v", s, err)
	}
	return v, nil
}

// forEachKeystore visits every live keystore (for the admin API).
func forEachKeystore(f func(*keystore)) {
	keystores.Range(func(_, v any) bool {
		f(v.(*keystore))
		return true
	})
}
