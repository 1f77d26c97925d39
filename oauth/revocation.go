package oauth

import (
	"errors"
	"sync"
	"time"
)

// ErrRevocationsFull is returned when the revocation set is at its bound
// even after dropping expired entries.
var ErrRevocationsFull = errors.New("revocation set is full")

// Revocations is the in-memory set of revoked token ids. An id stays until
// its token would have expired anyway; it is local to one process (a fleet
// needs a shared store).
type Revocations struct {
	mu        sync.RWMutex
	ids       map[[16]byte]time.Time // id -> token expiry
	max       int
	nextPrune time.Time
}

// NewRevocations returns an empty set holding at most max ids.
func NewRevocations(max int) *Revocations {
	return &Revocations{ids: map[[16]byte]time.Time{}, max: max}
}

// Add revokes id until exp. Already expired tokens are not stored.
func (r *Revocations) Add(id [16]byte, exp, now time.Time) error {
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
	if len(r.ids) >= r.max {
		return ErrRevocationsFull
	}
	r.ids[id] = exp
	return nil
}

func (r *Revocations) pruneLocked(now time.Time) {
	for id, exp := range r.ids {
		if !now.Before(exp) {
			delete(r.ids, id)
		}
	}
	r.nextPrune = now.Add(time.Minute)
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
