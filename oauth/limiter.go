package oauth

import (
	"sync"
	"time"
)

// Limiter limits failed client authentications per source address with a
// token bucket: each address may fail Burst times, and regains one attempt
// every Window/Burst. While an address has no attempts left, the caller
// answers 429 without checking credentials. The map holds at most MaxAddrs
// addresses; when it is full, addresses whose bucket has refilled (which
// carry no information) are dropped first, then an arbitrary one.
type Limiter struct {
	mu       sync.Mutex
	burst    float64
	per      time.Duration // time to regain one attempt
	maxAddrs int
	buckets  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter allows burst failures per window and remembers at most
// maxAddrs addresses.
func NewLimiter(burst int, window time.Duration, maxAddrs int) *Limiter {
	return &Limiter{
		burst: float64(burst), per: window / time.Duration(burst),
		maxAddrs: maxAddrs, buckets: map[string]*bucket{},
	}
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens += float64(el) / float64(l.per)
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
	}
	b.last = now
}

// Allow reports whether addr may attempt client authentication now, and
// if not, how long until it may.
func (l *Limiter) Allow(addr string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		return true, 0
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.per))
}

// Fail records one failed authentication from addr.
func (l *Limiter) Fail(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= l.maxAddrs {
			l.evictLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[addr] = b
	}
	l.refill(b, now)
	b.tokens--
	if b.tokens < 0 {
		b.tokens = 0
	}
}

func (l *Limiter) evictLocked(now time.Time) {
	for a, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, a)
		}
	}
	for a := range l.buckets {
		if len(l.buckets) < l.maxAddrs {
			break
		}
		delete(l.buckets, a)
	}
}

// Len is the number of tracked addresses.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// AuthLimiter limits failed client authentications so that one client
// cannot lock out another. Failures are counted per (source address,
// registered client id): a client that keeps failing is refused (429)
// only for its own id from its own address. Failures with a client id that
// is not registered (or none) are counted per address in a separate,
// larger budget, which when spent refuses only unregistered ids from that
// address.
//
// What an attacker can and cannot do with it:
//   - Guess a registered client's secret from one address: Burst attempts a
//     window, each failure also delayed by the caller. From many addresses,
//     Burst per address: address-based limits never bound a distributed
//     guesser; a secret of 256 random bits does.
//   - Lock out a client: only by failing with that client's id from that
//     client's address (a shared egress such as a NAT, or a proxy not in
//     trusted_proxies). Client ids are not secrets, so that remains
//     possible, for up to one window after the attacker stops; a client
//     with another id, or at another address, is unaffected. Failures with
//     unregistered ids never use up a registered client's budget.
//   - Grow memory: both tables hold at most maxKeys entries; when full,
//     refilled entries go first, then arbitrary ones, so an attacker with
//     very many addresses can reset buckets by eviction, as before.
type AuthLimiter struct {
	registered *Limiter // key: address, NUL, client id
	unknown    *Limiter // key: address
}

// NewAuthLimiter allows burst failures per window for each (address,
// registered client id) and unknownBurst failures per window for each
// address with unregistered ids; each table holds at most maxKeys entries.
func NewAuthLimiter(burst, unknownBurst int, window time.Duration, maxKeys int) *AuthLimiter {
	return &AuthLimiter{
		registered: NewLimiter(burst, window, maxKeys),
		unknown:    NewLimiter(unknownBurst, window, maxKeys),
	}
}

func (l *AuthLimiter) pick(addr, clientID string, registered bool) (*Limiter, string) {
	if registered {
		// An address (an IP in text form) never contains NUL, so the key
		// is unambiguous.
		return l.registered, addr + "\x00" + clientID
	}
	return l.unknown, addr
}

// Allow reports whether a client authentication from addr with clientID
// may be attempted now, and if not, how long until it may. registered says
// whether clientID is a registered client (ids are not secrets).
func (l *AuthLimiter) Allow(addr, clientID string, registered bool, now time.Time) (bool, time.Duration) {
	lim, key := l.pick(addr, clientID, registered)
	return lim.Allow(key, now)
}

// Fail records one failed authentication.
func (l *AuthLimiter) Fail(addr, clientID string, registered bool, now time.Time) {
	lim, key := l.pick(addr, clientID, registered)
	lim.Fail(key, now)
}
