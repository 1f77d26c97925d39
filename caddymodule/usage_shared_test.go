package caddymodule

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

// flakyUsage is a UsageStore whose writes fail while down is set.
type flakyUsage struct {
	down bool
	got  map[[2]string]usage.Delta
}

func (f *flakyUsage) AddUsage(_ context.Context, batch []usage.Delta) error {
	if f.down {
		return errors.New("database unreachable")
	}
	for _, d := range batch {
		k := [2]string{d.Key, d.Scope}
		sum := f.got[k]
		sum.Allowed += d.Allowed
		sum.Denied += d.Denied
		f.got[k] = sum
	}
	return nil
}

func (f *flakyUsage) KeyUsage(context.Context, string) ([]usage.Entry, error) { return nil, nil }

// A batch the store refused is written with the next one, not lost, and
// what waits stays one entry per (key, scope) however many writes fail.
func TestUsageFlushKeepsFailedBatches(t *testing.T) {
	const key, scope = "flush-test-key", "url:GET|/api/v1/courses"
	store := &flakyUsage{down: true, got: map[[2]string]usage.Delta{}}
	f := &usageFlusher
	f.Lock()
	savedStore, savedLogger, savedPending := f.store, f.logger, f.pending
	f.store, f.logger, f.pending = store, zap.NewNop(), nil
	f.Unlock()
	t.Cleanup(func() {
		f.Lock()
		f.store, f.logger, f.pending = savedStore, savedLogger, savedPending
		f.Unlock()
	})
	flush := func() {
		f.Lock()
		flushUsageLocked()
		f.Unlock()
	}
	now := time.Now().UnixNano()
	errorsBefore := usageWriteErrors.Load()
	for round := range 3 {
		keyUsage.Record(key, scope, true, now)
		keyUsage.Record(key, scope, false, now)
		flush()
		f.Lock()
		pending := f.pending[[2]string{key, scope}]
		n := 0
		for k := range f.pending {
			if k[0] == key {
				n++
			}
		}
		f.Unlock()
		if n != 1 || pending.Allowed != uint64(round+1) || pending.Denied != uint64(round+1) {
			t.Fatalf("round %d: %d pending entries for the key, %+v", round, n, pending)
		}
	}
	if got := usageWriteErrors.Load() - errorsBefore; got != 3 {
		t.Errorf("%d write errors counted, want 3", got)
	}
	store.down = false
	keyUsage.Record(key, scope, true, now)
	flush()
	flush() // nothing new: nothing is written twice
	if got := store.got[[2]string{key, scope}]; got.Allowed != 4 || got.Denied != 3 {
		t.Errorf("written: allowed %d denied %d, want 4 and 3", got.Allowed, got.Denied)
	}
}
