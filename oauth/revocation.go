package oauth

import (
	"errors"
	"sync"
	"time"
)

// ErrRevocationsFull is returned when the revocation set is at its bound
// even after dropping expired entries.
var ErrRevocationsFull = errors.New("revocation set is full")

// ErrClientRevocationsFull is returned when one client holds its whole
// share of the revocation set in tokens that have not expired yet. Other
// clients can still revoke.
var ErrClientRevocationsFull = errors.New("this client's share of the revocation set is full")

// Revocations is the in-memory set of revoked token ids. An id stays until
// its token would have expired anyway; it is local to one process (a fleet
// needs a shared store).
//
// The set is bounded in total and per client: a client that issues and
// revokes tokens as fast as it can (about 2,000 pairs a second on one core)
// fills only its own share, and from then on its own revocations fail while
// every other client's still succeed. Filling the whole set takes
// max/perClient clients doing so at once.
type Revocations struct {
	mu sync.RWMutex
	// ids maps a revoked token id to its expiry (Unix nanoseconds); each
	// id is also in exactly one client's list, which is what pruning
	// walks. About 80 bytes per revocation in all.
	ids       map[[16]byte]int64
	clients   map[string]*clientRevocations
	max       int
	perClient int
	// nextPrune is the next routine prune (once a minute); nextFullPrune
	// the earliest prune of a full set.
	nextPrune, nextFullPrune time.Time
}

type revokedID struct {
	id  [16]byte
	exp int64
}

type clientRevocations struct {
	list      []revokedID
	nextPrune time.Time
}

// pruneInterval bounds how often a client at its cap makes the set look
// through that client's entries for expired ones, and how often a full set
// is looked through: a client hammering a full share (or set) costs a map
// lookup per request, not a scan.
const pruneInterval = time.Second

// NewRevocations returns an empty set holding at most max ids, and at most
// perClient ids of any one client.
func NewRevocations(max, perClient int) *Revocations {
	return &Revocations{
		ids: map[[16]byte]int64{}, clients: map[string]*clientRevocations{},
		max: max, perClient: min(perClient, max),
	}
}

// Add revokes client's token id until exp. Already expired tokens are not
// stored.
func (r *Revocations) Add(client string, id [16]byte, exp, now time.Time) error {
	if !now.Before(exp) {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ids[id]; ok {
		return nil
	}
	c := r.clients[client]
	if c != nil && len(c.list) >= r.perClient {
		if !now.Before(c.nextPrune) {
			r.pruneClientLocked(c, now)
			c.nextPrune = now.Add(pruneInterval)
		}
		if len(c.list) >= r.perClient {
			return ErrClientRevocationsFull
		}
	}
	if !now.Before(r.nextPrune) || (len(r.ids) >= r.max && !now.Before(r.nextFullPrune)) {
		r.pruneLocked(now) // may drop c if it became empty
	}
	if len(r.ids) >= r.max {
		return ErrRevocationsFull
	}
	if c = r.clients[client]; c == nil {
		c = &clientRevocations{}
		r.clients[client] = c
	}
	r.ids[id] = exp.UnixNano()
	c.list = append(c.list, revokedID{id: id, exp: exp.UnixNano()})
	return nil
}

// pruneLocked drops every expired entry (once a minute, and at most once a
// second while the set is full).
func (r *Revocations) pruneLocked(now time.Time) {
	for name, c := range r.clients {
		r.pruneClientLocked(c, now)
		if len(c.list) == 0 {
			delete(r.clients, name)
		}
	}
	r.nextPrune = now.Add(time.Minute)
	r.nextFullPrune = now.Add(pruneInterval)
}

// pruneClientLocked drops one client's expired entries.
func (r *Revocations) pruneClientLocked(c *clientRevocations, now time.Time) {
	t := now.UnixNano()
	kept := c.list[:0]
	for _, e := range c.list {
		if t < e.exp {
			kept = append(kept, e)
		} else {
			delete(r.ids, e.id)
		}
	}
	clear(c.list[len(kept):])
	c.list = kept
}

// Has reports whether id was revoked.
func (r *Revocations) Has(id [16]byte) bool {
	r.mu.RLock()
	_, ok := r.ids[id]
	r.mu.RUnlock()
	return ok
}

// Len is the number of stored ids (expired ones included until pruned).
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ids)
}
