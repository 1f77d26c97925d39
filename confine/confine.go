package confine

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// ErrNotFound is returned by a Lookup when Canvas says the object does not
// exist (404). Such an object is outside every subtree.
var ErrNotFound = errors.New("not found")

// Outcome is the confinement answer for one request.
type Outcome uint8

const (
	// Inside: every object the request names is inside the key's accounts.
	Inside Outcome = iota
	// Outside: an object is outside them, or does not exist.
	Outside
	// Failed: a look-up failed; nobody can tell, so the request is not
	// forwarded (503) and nothing is cached.
	Failed
)

var outcomeNames = [...]string{"inside", "outside", "lookup_failed"}

func (o Outcome) String() string { return outcomeNames[o] }

// Result is the confinement answer and, when not Inside, the object that
// decided it.
type Result struct {
	Outcome Outcome
	// Ref is the object that was outside or could not be looked up.
	Ref Ref
	// Account is the account Ref resolved to ("" when it does not exist
	// or the look-up failed).
	Account string
	Reason  string
	// Err is the look-up failure (Failed only). Its text names no token.
	Err error
	// Moves: the request carries a parameter that moves an object; when
	// it is allowed and forwarded, call Confiner.Moved.
	Moves bool
}

// Confiner decides whether a request of a confined key stays inside the
// key's accounts. It is safe for concurrent use.
type Confiner struct {
	Lookup Lookup
	Cache  *Cache
	// OnLookup, when set, is told about every call to Lookup (metrics).
	OnLookup func(kind Kind, outcome string, d time.Duration)

	routes sync.Map // scope -> *Route, for scopes outside the catalogue
}

// New returns a Confiner asking lk, with a cache of the given ttl and size
// (zero: defaults).
func New(lk Lookup, ttl time.Duration, max int) *Confiner {
	return &Confiner{Lookup: lk, Cache: NewCache(ttl, max)}
}

var (
	catalogueRoutesOnce sync.Once
	catalogueRoutes     map[string]*Route
)

// RouteOf returns the confinement plan of a scope.
func (c *Confiner) RouteOf(scope string) *Route {
	catalogueRoutesOnce.Do(func() {
		cat := matcher.Catalogue()
		catalogueRoutes = make(map[string]*Route, len(cat))
		for _, s := range cat {
			r, _ := ClassifyScope(s)
			catalogueRoutes[s] = &r
		}
	})
	if r, ok := catalogueRoutes[scope]; ok {
		return r
	}
	if r, ok := c.routes.Load(scope); ok {
		return r.(*Route)
	}
	r, err := ClassifyScope(scope)
	if err != nil {
		r = Route{NoContext: "not a URL scope"}
	}
	c.routes.Store(scope, &r)
	return &r
}

// Request is one allowed request of a confined key.
type Request struct {
	// Scope is the scope that allowed the request; its route says which
	// path segments name contexts.
	Scope string
	// Unconfined: the scope is in the key's unconfined_scopes; only move
	// parameters are checked.
	Unconfined bool
	// Path is the canonical escaped path the scope matched.
	Path string
	// Params iterates the query and body parameters (may be nil).
	Params Params
	// Roots are the key's accounts, as written in the keys file.
	Roots []string
	Now   time.Time
}

// Check decides one request: every context in the path and every move
// parameter must resolve inside one of the roots.
func (c *Confiner) Check(ctx context.Context, q *Request) Result {
	var buf [6]Ref
	refs := buf[:0]
	if !q.Unconfined {
		r := c.RouteOf(q.Scope)
		if !r.Confinable() {
			return Result{Outcome: Outside, Reason: "the route has no account context and the scope is not in unconfined_scopes"}
		}
		refs = r.PathRefs(refs, q.Path)
	}
	moves := MoveRefs(q.Params)
	res := Result{Moves: len(moves) > 0}
	if len(refs) == 0 && len(moves) == 0 {
		return res
	}
	now := q.Now.UnixNano()
	if c.Cache.memoInside(q.Roots, refs, moves, now) {
		return res
	}
	// Taken before the cache is read: a Forget from here on drops this
	// table, with whatever this request records into it.
	memo := c.Cache.memoTable()
	// valid is when the first of the answers used here expires.
	valid := int64(math.MaxInt64)
	var rootBuf [4]string
	roots := rootBuf[:0]
	for _, r := range q.Roots {
		obj, exp, err := c.get(ctx, KindAccount, r, q.Now)
		if err != nil {
			return Result{Outcome: Failed, Ref: Ref{Kind: KindAccount, Param: "accounts", ID: r}, Reason: "looking up one of the key's accounts failed", Err: err}
		}
		valid = min(valid, exp)
		if obj.Found {
			roots = append(roots, obj.ID)
		}
	}
	for _, list := range [2][]Ref{refs, moves} {
		for _, ref := range list {
			out, exp := c.resolve(ctx, ref, roots, q.Now)
			if out.Outcome != Inside {
				out.Moves = res.Moves
				return out
			}
			if exp = min(valid, exp); exp > now {
				memo.put(q.Roots, ref.Kind, ref.ID, exp, c.Cache.Max)
			}
		}
	}
	return res
}

// maxDepth bounds a walk up the account tree (Canvas trees are shallow;
// a longer chain is a loop or an error and fails closed).
const maxDepth = 32

// resolve walks ref's chain up to one of roots; with an Inside answer it
// returns when the first cache entry it rested on expires.
func (c *Confiner) resolve(ctx context.Context, ref Ref, roots []string, now time.Time) (Result, int64) {
	kind, id := ref.Kind, ref.ID
	account := ""
	valid := int64(math.MaxInt64)
	for depth := 0; depth < maxDepth; depth++ {
		obj, exp, err := c.get(ctx, kind, id, now)
		valid = min(valid, exp)
		if err != nil {
			return Result{Outcome: Failed, Ref: ref, Reason: "looking up a " + kind.String() + " failed", Err: err}, 0
		}
		if !obj.Found {
			return Result{Outcome: Outside, Ref: ref, Account: account, Reason: "Canvas says the " + kind.String() + " does not exist"}, 0
		}
		if kind == KindAccount {
			if account == "" {
				account = obj.ID
			}
			for _, r := range roots {
				if r == obj.ID {
					return Result{Outcome: Inside}, valid
				}
			}
			if obj.Parent == "" {
				return Result{Outcome: Outside, Ref: ref, Account: account, Reason: "the " + ref.Kind.String() + " is outside the key's accounts"}, 0
			}
		}
		kind, id = obj.ParentKind, obj.Parent
		if kind == KindNone || id == "" {
			return Result{Outcome: Failed, Ref: ref, Reason: "Canvas named no context for the " + ref.Kind.String(), Err: errors.New("no context in look-up answer")}, 0
		}
	}
	return Result{Outcome: Failed, Ref: ref, Reason: "the account chain is too deep", Err: errors.New("account chain too deep")}, 0
}

func (c *Confiner) get(ctx context.Context, kind Kind, id string, now time.Time) (Object, int64, error) {
	if c.OnLookup == nil {
		return c.Cache.get(ctx, c.Lookup, kind, id, now)
	}
	return c.Cache.get(ctx, timedLookup{c}, kind, id, now)
}

type timedLookup struct{ c *Confiner }

func (t timedLookup) Lookup(ctx context.Context, kind Kind, id string) (Object, error) {
	start := time.Now()
	obj, err := t.c.Lookup.Lookup(ctx, kind, id)
	outcome := "found"
	switch {
	case err == ErrNotFound:
		outcome = "not_found"
	case err != nil:
		outcome = "failed"
	}
	t.c.OnLookup(kind, outcome, time.Since(start))
	return obj, err
}

// Moved drops the cached answers for the objects an allowed request moved
// (the path's objects, when the request carried a move parameter, or
// cross-listed a section): the next request asks Canvas again.
func (c *Confiner) Moved(scope, path string) {
	r := c.RouteOf(scope)
	var buf [6]Ref
	for _, ref := range r.PathRefs(buf[:0], path) {
		c.Cache.Forget(ref.Kind, ref.ID)
	}
}

// MovesObjects reports whether an allowed request with this scope moves
// the objects in its path even without a move parameter (section
// cross-listing).
func MovesObjects(scope string) bool {
	return scope == "url:POST|/api/v1/sections/:id/crosslist/:new_course_id" || scope == "url:DELETE|/api/v1/sections/:id/crosslist"
}
