package confine

import (
	"encoding/binary"
	"sync"
)

// The memo keeps resolve's Inside answers per (the key's roots as
// written, kind, id), so that a warm request makes one map look-up per
// object it names instead of one cache hit per root and per object on the
// object's chain up to a root.
//
// What it buys: BenchmarkServeHTTPConfinedWarm over
// BenchmarkServeHTTPUnconfinedSame (caddymodule, three account levels
// below the key's account) went from about +650 to about +60..+210 CPU ns
// per request (medians of per-round differences, two sets of five and seven
// interleaved runs on a shared 2-core machine, 2026-11-30); the target is
// +300.
//
// An answer is kept until the earliest expiry of the cache entries it was
// derived from (each root and each object on the chain), so it never
// outlives any of them. Forget and Purge drop the whole table, as any
// move may change any chain; a resolve that began before the drop writes
// into the dropped table, never into its successor. Only Inside answers
// are kept: the others carry details for the log and are rare.
type memoTable struct {
	mu sync.RWMutex
	m  map[string]int64 // memo key -> expiry, unix nanoseconds
}

// memoKeyBuf is the stack buffer a memo key is built in; a longer key is
// built on the heap (and costs an allocation).
const memoKeyBuf = 96

// memoKey appends the key for (roots, kind, id): every part is prefixed
// with its length, so no two lists of parts give the same key.
func memoKey(b []byte, roots []string, kind Kind, id string) []byte {
	b = append(b, byte(kind))
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	for _, r := range roots {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

// memoInside reports whether every ref of both lists has a memoised
// Inside answer for roots that is still valid at now.
func (c *Cache) memoInside(roots []string, refs, moves []Ref, now int64) bool {
	t := c.memo.Load()
	if t == nil {
		return false
	}
	var buf [memoKeyBuf]byte
	n := 0
	t.mu.RLock()
	for _, list := range [2][]Ref{refs, moves} {
		for _, ref := range list {
			exp, ok := t.m[string(memoKey(buf[:0], roots, ref.Kind, ref.ID))]
			if !ok || now >= exp {
				t.mu.RUnlock()
				return false
			}
			n++
		}
	}
	t.mu.RUnlock()
	c.hits.Add(uint64(n))
	return true
}

// memoTable returns the current memo table, starting one if there is
// none. A resolve takes it before reading the cache and records into it.
func (c *Cache) memoTable() *memoTable {
	for {
		if t := c.memo.Load(); t != nil {
			return t
		}
		t := &memoTable{m: map[string]int64{}}
		if c.memo.CompareAndSwap(nil, t) {
			return t
		}
	}
}

// put records an Inside answer valid until expires. The table holds at
// most max answers; when full it starts afresh (answers are cheap to
// redo from the cache).
func (t *memoTable) put(roots []string, kind Kind, id string, expires int64, max int) {
	var buf [memoKeyBuf]byte
	k := memoKey(buf[:0], roots, kind, id)
	t.mu.Lock()
	if len(t.m) >= max {
		clear(t.m)
	}
	t.m[string(k)] = expires
	t.mu.Unlock()
}
