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
