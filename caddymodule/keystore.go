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
	// secretFiles are the files behind the {file.*} secrets of the last
	// load attempt, watched like the keys file: a rotated upstream_token
	// is picked up by polling.
	secretFiles []watchedFile
	// failure is the text of the last failed load since the last good
	// one ("" when the last load succeeded); failedLoads counts them.
	failure     string
	failedLoads int

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
	// Not reload: a first load that fails is Provision's error, which
	// Caddy reports; logging it here too would say it twice.
	if _, err := ks.load(true); err != nil {
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
			storeClients.DeleteLabelValues(ks.path)
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
			_, _ = ks.reload(false) // reload logs its own failures
		}
	}
}

// reload re-reads the file when its size, mtime or content hash changed,
// or a file behind one of its {file.*} secrets did (or always, when force
// is set), compiles it and swaps it in. On any error the previous store
// stays in place and the failure is logged with every error's file:line:
// at once when forced, and once per distinct failure when polled.
func (ks *keystore) reload(force bool) (changed bool, err error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	changed, err = ks.load(force)
	if err != nil {
		ks.logFailure(err, force)
	}
	return changed, err
}

func (ks *keystore) load(force bool) (changed bool, err error) {
	fi, err := os.Stat(ks.path)
	if err != nil {
		reloadsTotal.WithLabelValues("error").Inc()
		return false, fmt.Errorf("keys file: %w", err)
	}
	secretsChanged := secretFilesChanged(ks.secretFiles)
	if !force && !secretsChanged && fi.Size() == ks.lastSize && fi.ModTime().Equal(ks.lastMod) {
		return false, nil
	}
	started := time.Now()
	data, err := os.ReadFile(ks.path)
	if err != nil {
		reloadsTotal.WithLabelValues("error").Inc()
		return false, fmt.Errorf("keys file: %w", err)
	}
	sum := sha256.Sum256(data)
	// The content of the store in force, unchanged: nothing to do. Not
	// after a failure, as a secret may have changed meanwhile; then the
	// file is compiled again, which also logs the recovery.
	if !force && !secretsChanged && ks.failure == "" && bytes.Equal(sum[:], ks.lastHash[:]) {
		ks.lastSize, ks.lastMod = fi.Size(), fi.ModTime()
		return false, nil
	}
	watch := &secretWatch{}
	store, err := policy.Load(ks.path, data, ks.parse, policy.CompileOptions{ResolveSecret: watch.resolve})
	// Remember what this attempt read, good or bad, so polling reports a
	// broken version once, not on every tick, until something changes.
	ks.lastSize, ks.lastMod = fi.Size(), fi.ModTime()
	if err != nil {
		// Keep watching the secrets of the store in force (as they are
		// now) and those this attempt read, such as a missing file.
		ks.secretFiles = mergeWatched(restat(ks.secretFiles), watch.files)
		reloadsTotal.WithLabelValues("error").Inc()
		return false, err
	}
	ks.secretFiles = watch.files
	ks.lastHash = sum
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
	storeClients.WithLabelValues(ks.path).Set(float64(store.ClientCount()))
	ks.logRecovered()
	caddy.Log().Named("canvas_scopes").Info("keys file loaded",
		zap.String("keys_file", ks.path),
		zap.Int("developer_keys", len(store.Keys())),
		zap.Int("tokens", store.TokenCount()),
		zap.Int("clients", store.ClientCount()),
		zap.Int("secret_files", len(ks.secretFiles)),
		zap.Duration("load_time", loadTime)) // read, parse, validate, compile
	return true, nil
}

// forEachKeystore visits every live keystore (for the admin API).
func forEachKeystore(f func(*keystore)) {
	keystores.Range(func(_, v any) bool {
		f(v.(*keystore))
		return true
	})
}

// forEachStore visits the keystore of every keys file and of every
// database in use: what the admin API lists and reports on. (Reloading
// is for keys files only: a database's store follows the database.)
func forEachStore(f func(*keystore)) {
	forEachKeystore(f)
	fleetSources.Range(func(_, v any) bool {
		if src, ok := v.(*fleetSource); ok && src != nil {
			f(src.ks)
		}
		return true
	})
}
