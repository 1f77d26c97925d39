package caddymodule

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/fleet"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

// usageFlushInterval is how often an instance on a database writes the
// counts it gathered since the last write.
const usageFlushInterval = 5 * time.Second

// usageWriteErrors counts failed writes of usage batches (a metric).
var usageWriteErrors atomic.Uint64

// fleetUsage is the UsageStore of a database: the fleet-wide counts.
type fleetUsage struct{ src *fleetSource }

func (u fleetUsage) AddUsage(ctx context.Context, batch []usage.Delta) error {
	pool, err := u.src.writePool()
	if err != nil {
		return err
	}
	return fleet.AddUsage(ctx, pool, batch)
}

func (u fleetUsage) KeyUsage(ctx context.Context, id string) ([]usage.Entry, error) {
	pool, err := u.src.writePool()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return fleet.KeyUsage(ctx, pool, id)
}

// usageFlusher writes keyUsage to the shared store while at least one
// handler runs on a database. keyUsage is one table per process, so
// there is one flusher too, writing to the oldest database in use (a
// process normally has one). Counts a failed write could not store are
// kept, merged per (key, scope), for the next try: at most one entry per
// pair the table holds, so they stay bounded however long the database
// is away.
var usageFlusher usageFlusherState

type usageFlusherState struct {
	sync.Mutex
	sources []*fleetSource
	store   UsageStore
	pending map[[2]string]usage.Delta
	stop    chan struct{}
	done    chan struct{}
	logger  *zap.Logger
}

// joinSharedUsage makes src a target of the usage counts, starting the
// flusher for the first one.
func joinSharedUsage(src *fleetSource, logger *zap.Logger) {
	f := &usageFlusher
	f.Lock()
	defer f.Unlock()
	f.sources = append(f.sources, src)
	if len(f.sources) > 1 {
		return
	}
	f.logger = logger
	f.useStore(fleetUsage{src: src})
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go runUsageFlusher(f.stop, f.done)
}

// leaveSharedUsage removes src; leaving as the target writes what is
// pending first (the final flush at shutdown or reload), and the last one
// to leave stops the flusher.
func leaveSharedUsage(src *fleetSource) {
	f := &usageFlusher
	f.Lock()
	i := slices.Index(f.sources, src)
	if i < 0 {
		f.Unlock()
		return
	}
	if i == 0 {
		flushUsageLocked()
	}
	f.sources = slices.Delete(f.sources, i, i+1)
	if len(f.sources) > 0 {
		f.useStore(fleetUsage{src: f.sources[0]})
		f.Unlock()
		return
	}
	f.useStore(nil)
	stop, done := f.stop, f.done
	f.Unlock()
	close(stop)
	<-done
}

// useStore makes s the store written to and read from (nil: none). Each
// store is published in a variable of its own: the admin API reads the
// published one without the flusher's lock.
func (f *usageFlusherState) useStore(s UsageStore) {
	f.store = s
	if s == nil {
		sharedUsage.Store(nil)
		return
	}
	published := s
	sharedUsage.Store(&published)
}

func runUsageFlusher(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(usageFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			usageFlusher.Lock()
			flushUsageLocked()
			usageFlusher.Unlock()
		}
	}
}

// flushUsageLocked writes the pending counts and what keyUsage counted
// since the last drain, in one batch; on failure it keeps them.
func flushUsageLocked() {
	f := &usageFlusher
	if f.store == nil {
		return
	}
	for _, d := range keyUsage.Drain() {
		k := [2]string{d.Key, d.Scope}
		if p, ok := f.pending[k]; ok {
			d.Allowed += p.Allowed
			d.Denied += p.Denied
			if p.First.Before(d.First) {
				d.First = p.First
			}
			if p.Last.After(d.Last) {
				d.Last = p.Last
			}
		}
		if f.pending == nil {
			f.pending = map[[2]string]usage.Delta{}
		}
		f.pending[k] = d
	}
	if len(f.pending) == 0 {
		return
	}
	batch := make([]usage.Delta, 0, len(f.pending))
	for _, d := range f.pending {
		batch = append(batch, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := f.store.AddUsage(ctx, batch)
	cancel()
	if err != nil {
		usageWriteErrors.Add(1)
		f.logger.Warn("scope usage not written to the database; kept for the next try",
			zap.Int("pairs", len(batch)), zap.Error(err))
		return
	}
	clear(f.pending)
}
