package confine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Object is what Canvas said about one object: its canonical id and the
// context it belongs to (ParentKind/Parent; an account with no Parent is
// the root account). Found is false when Canvas said it does not exist.
type Object struct {
	Found      bool
	ID         string
	ParentKind Kind
	Parent     string
}

// Lookup asks Canvas about one object. It returns ErrNotFound when Canvas
// answers that the object does not exist; any other error is a failure
// (never cached; the request is answered 503).
type Lookup interface {
	Lookup(ctx context.Context, kind Kind, id string) (Object, error)
}

type cacheKey struct {
	kind Kind
	id   string
}

type entry struct {
	key     cacheKey
	obj     Object
	expires int64 // unix nanoseconds; guarded by Cache.mu
	used    atomic.Bool
}

// Cache keeps look-up answers (found and not found) for a TTL. It holds at
// most Max objects and evicts with the CLOCK approximation of least
// recently used (a hit only sets a bit, so hits share a read lock).
// Concurrent first look-ups of one object make one call (single flight);
// failures are never kept.
type Cache struct {
	TTL time.Duration
	Max int

	mu   sync.RWMutex
	m    map[cacheKey]*entry
	ring []*entry
	hand int

	fmu     sync.Mutex
	flights map[cacheKey]*flight

	// memo holds resolve's Inside answers (memo.go); nil after a Forget
	// or Purge until the next resolve starts a fresh table.
	memo atomic.Pointer[memoTable]

	hits, misses atomic.Uint64
}

type flight struct {
	done chan struct{}
	obj  Object
	err  error
	// expires is when the answer stops being valid: its cache entry's
	// expiry, or 0 when it was not kept (a Forget or Purge came while it
	// was asked, so it may predate a move).
	expires int64
	// dropped: a Forget or Purge came while the look-up was under way;
	// its answer is not kept and later requests do not wait for it.
	dropped bool // guarded by Cache.fmu
}

// Defaults for the cache.
const (
	DefaultTTL      = 5 * time.Minute
	DefaultMaxItems = 100_000
)

// NewCache returns a cache; zero ttl or max take the defaults.
func NewCache(ttl time.Duration, max int) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if max <= 0 {
		max = DefaultMaxItems
	}
	return &Cache{TTL: ttl, Max: max, m: map[cacheKey]*entry{}, flights: map[cacheKey]*flight{}}
}

// Stats are the cache's counters.
type Stats struct {
	Hits, Misses uint64
	Items        int
}

// Stats returns the hit and miss counts and the number of objects held.
func (c *Cache) Stats() Stats {
	c.mu.RLock()
	n := len(c.m)
	c.mu.RUnlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Items: n}
}

// get returns the cached answer for (kind, id) or asks lk, once for all
// concurrent callers, and when the answer expires (unix nanoseconds; 0
// when it was not kept).
func (c *Cache) get(ctx context.Context, lk Lookup, kind Kind, id string, now time.Time) (Object, int64, error) {
	k := cacheKey{kind, id}
	c.mu.RLock()
	e := c.m[k]
	if e != nil && now.UnixNano() < e.expires {
		obj, exp := e.obj, e.expires
		e.used.Store(true)
		c.mu.RUnlock()
		c.hits.Add(1)
		return obj, exp, nil
	}
	c.mu.RUnlock()
	c.misses.Add(1)

	c.fmu.Lock()
	if f := c.flights[k]; f != nil {
		c.fmu.Unlock()
		select {
		case <-f.done:
			return f.obj, f.expires, f.err
		case <-ctx.Done():
			return Object{}, 0, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[k] = f
	c.fmu.Unlock()

	// The look-up outlives the request that started it: others may be
	// waiting for it. Lookup implementations bound it with their timeout.
	f.obj, f.err = lk.Lookup(context.WithoutCancel(ctx), kind, id)
	if f.err == ErrNotFound {
		f.obj, f.err = Object{Found: false}, nil
	}
	if f.err == nil {
		f.expires = c.put(k, f, now)
	}
	c.fmu.Lock()
	if c.flights[k] == f {
		delete(c.flights, k)
	}
	c.fmu.Unlock()
	close(f.done)
	return f.obj, f.expires, f.err
}

// put keeps the answer of flight f and returns its expiry, or 0 when a
// Forget or Purge came while it was asked (it may predate a move, so it
// is neither kept nor memoised).
func (c *Cache) put(k cacheKey, f *flight, now time.Time) int64 {
	obj := f.obj
	exp := now.Add(c.TTL).UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Forget and Purge mark flights under c.mu too, so after this check
	// no Forget can come between it and the store.
	c.fmu.Lock()
	dropped := f.dropped
	c.fmu.Unlock()
	if dropped {
		return 0
	}
	if e := c.m[k]; e != nil {
		e.obj, e.expires = obj, exp
		e.used.Store(true)
		return exp
	}
	e := &entry{key: k, obj: obj, expires: exp}
	if len(c.ring) < c.Max {
		c.ring = append(c.ring, e)
	} else {
		// CLOCK: pass over recently used entries once, clearing their
		// bit, and replace the first one not used since.
		for {
			old := c.ring[c.hand]
			if old.used.Load() && c.m[old.key] == old {
				old.used.Store(false)
				c.hand = (c.hand + 1) % len(c.ring)
				continue
			}
			if c.m[old.key] == old {
				delete(c.m, old.key)
			}
			c.ring[c.hand] = e
			c.hand = (c.hand + 1) % len(c.ring)
			break
		}
	}
	c.m[k] = e
	return exp
}

// Forget drops what the cache knows about an object, under the id it was
// asked by and under its canonical id. It also drops every memoised answer
// (any of them may rest on the object) and every look-up under way (one
// may have been asked before the move and answer the old place; those
// waiting for it get its answer, but it is not kept).
func (c *Cache) Forget(kind Kind, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[cacheKey{kind, id}]; e != nil {
		delete(c.m, e.key)
		if e.obj.ID != "" {
			delete(c.m, cacheKey{kind, e.obj.ID})
		}
	}
	c.dropDerived()
}

// Purge empties the cache, the memoised answers, and drops the look-ups
// under way as Forget does.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.ring, c.hand = nil, 0
	c.dropDerived()
}

// dropDerived drops the memo and the flights under way; c.mu is held, and
// the entries are already gone, so a resolve that starts a new memo table
// after this reads only what the cache holds now.
func (c *Cache) dropDerived() {
	c.memo.Store(nil)
	c.fmu.Lock()
	for k, f := range c.flights {
		f.dropped = true
		delete(c.flights, k)
	}
	c.fmu.Unlock()
}
