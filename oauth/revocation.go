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
	mu        sync.RWMutex
	ids       map[[16]byte]revocation
	clients   map[string]*clientRevocations
	max       int
	perClient int
	nextPrune time.Time
}

type revocation struct {
	exp    time.Time
	client string
}

type clientRevocations struct {
	ids       map[[16]byte]time.Time
	nextPrune time.Time
}

// clientPruneInterval bounds how often a client at its cap may make the set
// look through that client's entries for expired ones, so a client
// hammering a full share costs a map lookup, not a scan, per request.
const clientPruneInterval = time.Second

// NewRevocations returns an empty set holding at most max ids, and at most
// perClient ids of any one client.
func NewRevocations(max, perClient int) *Revocations {
	return &Revocations{
		ids: map[[16]byte]revocation{}, clients: map[string]*clientRevocations{},
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
	if !now.Before(r.nextPrune) || len(r.ids) >= r.max {
		r.pruneLocked(now)
	}
	c := r.clients[client]
	if c == nil {
		c = &clientRevocations{ids: map[[16]byte]time.Time{}}
		r.clients[client] = c
	}
	if len(c.ids) >= r.perClient && !now.Before(c.nextPrune) {
		r.pruneClientLocked(c, now)
	}
	if len(c.ids) >= r.perClient {
		return ErrClientRevocationsFull
	}
	if len(r.ids) >= r.max {
		return ErrRevocationsFull
	}
	r.ids[id] = revocation{exp: exp, client: client}
	c.ids[id] = exp
	return nil
}

// pruneLocked drops every expired entry (at most once a minute unless the
// set is full).
func (r *Revocations) pruneLocked(now time.Time) {
	for id, e := range r.ids {
		if !now.Before(e.exp) {
			delete(r.ids, id)
			if c := r.clients[e.client]; c != nil {
				delete(c.ids, id)
			}
		}
	}
	for name, c := range r.clients {
		if len(c.ids) == 0 {
			delete(r.clients, name)
		}
	}
	r.nextPrune = now.Add(time.Minute)
}

// pruneClientLocked drops one client's expired entries.
func (r *Revocations) pruneClientLocked(c *clientRevocations, now time.Time) {
	for id, exp := range c.ids {
		if !now.Before(exp) {
			delete(c.ids, id)
			delete(r.ids, id)
		}
	}
	c.nextPrune = now.Add(clientPruneInterval)
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
