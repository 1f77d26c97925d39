// Package usage counts, per developer key and per catalogue scope, the
// requests the gate decided: the granted scope that allowed a request, or
// the scope a denied (or, in report mode, would-be-denied) request needed.
// It answers "which scopes does this vendor use?" so an admin can grant
// exactly those. Only key ids and scope templates are kept: never a path,
// never a token. Memory is bounded by the (key, scope) pairs actually
// seen, and by a hard limit on them.
package usage

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLimit bounds the (key, scope) pairs a Table holds: far above
// keys × scopes of any real deployment (the catalogue has about 1,300
// scopes), low enough that a keys file churning through ids cannot grow
// it without end.
const DefaultLimit = 1 << 18

// Table holds the counts. It is safe for concurrent use; Record is the hot
// path and, once a pair exists, takes only a read lock and atomics.
type Table struct {
	mu      sync.RWMutex
	entries map[pair]*entry
	byKey   map[string][]*entry
	limit   int
	dropped atomic.Uint64

	drainMu sync.Mutex // serialises Drain (the flushed marks)
}

type pair struct{ key, scope string }

type entry struct {
	key, scope      string
	allowed, denied atomic.Uint64
	first, last     atomic.Int64 // unix nanoseconds
	// flushedAllowed and flushedDenied are the counts already handed to
	// Drain (guarded by Table.drainMu).
	flushedAllowed, flushedDenied uint64
	flushedLast                   int64
}

// NewTable returns an empty table holding at most limit (key, scope)
// pairs (DefaultLimit when limit <= 0).
func NewTable(limit int) *Table {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Table{entries: map[pair]*entry{}, byKey: map[string][]*entry{}, limit: limit}
}

// Record counts one request of key for scope at now (unix nanoseconds):
// allowed by that granted scope, or denied for want of it. Empty key or
// scope records nothing.
func (t *Table) Record(key, scope string, allowed bool, now int64) {
	if key == "" || scope == "" {
		return
	}
	t.mu.RLock()
	e := t.entries[pair{key, scope}]
	t.mu.RUnlock()
	if e == nil {
		if e = t.add(key, scope, now); e == nil {
			return
		}
	}
	if allowed {
		e.allowed.Add(1)
	} else {
		e.denied.Add(1)
	}
	for {
		last := e.last.Load()
		if now <= last || e.last.CompareAndSwap(last, now) {
			break
		}
	}
	for {
		first := e.first.Load()
		if now >= first || e.first.CompareAndSwap(first, now) {
			break
		}
	}
}

func (t *Table) add(key, scope string, now int64) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.entries[pair{key, scope}]; e != nil {
		return e
	}
	if len(t.entries) >= t.limit {
		t.dropped.Add(1)
		return nil
	}
	// Copies: the caller's strings may be views of a keys file's text,
	// which a reload would otherwise keep alive.
	e := &entry{key: strings.Clone(key), scope: strings.Clone(scope)}
	e.first.Store(now)
	t.entries[pair{e.key, e.scope}] = e
	t.byKey[e.key] = append(t.byKey[e.key], e)
	return e
}

// Len is the number of (key, scope) pairs held.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.entries)
}

// Dropped is the number of requests not counted because the table was full.
func (t *Table) Dropped() uint64 { return t.dropped.Load() }

// Entry is what was counted for one scope of one key.
type Entry struct {
	Scope   string
	Allowed uint64 // requests the scope allowed
	Denied  uint64 // requests denied (or would-be denied) for want of it
	First   time.Time
	Last    time.Time
}

// Key returns a copy of the counts for key id, sorted by scope.
func (t *Table) Key(id string) []Entry {
	t.mu.RLock()
	list := slices.Clone(t.byKey[id])
	t.mu.RUnlock()
	out := make([]Entry, 0, len(list))
	for _, e := range list {
		out = append(out, Entry{Scope: e.scope, Allowed: e.allowed.Load(), Denied: e.denied.Load(),
			First: time.Unix(0, e.first.Load()).UTC(), Last: time.Unix(0, e.last.Load()).UTC()})
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Scope, b.Scope) })
	return out
}

// Delta is what a Table counted for one (key, scope) since the previous
// Drain: the batch a shared store adds to its totals.
type Delta struct {
	Key, Scope      string
	Allowed, Denied uint64
	First, Last     time.Time
}

// Drain returns the counts added since the previous Drain, for writing to
// a shared store in batches. The table's own totals are unchanged.
func (t *Table) Drain() []Delta {
	t.drainMu.Lock()
	defer t.drainMu.Unlock()
	t.mu.RLock()
	list := make([]*entry, 0, len(t.entries))
	for _, e := range t.entries {
		list = append(list, e)
	}
	t.mu.RUnlock()
	var out []Delta
	for _, e := range list {
		a, d, last := e.allowed.Load(), e.denied.Load(), e.last.Load()
		if a == e.flushedAllowed && d == e.flushedDenied && last == e.flushedLast {
			continue
		}
		out = append(out, Delta{Key: e.key, Scope: e.scope, Allowed: a - e.flushedAllowed, Denied: d - e.flushedDenied,
			First: time.Unix(0, e.first.Load()).UTC(), Last: time.Unix(0, last).UTC()})
		e.flushedAllowed, e.flushedDenied, e.flushedLast = a, d, last
	}
	return out
}
