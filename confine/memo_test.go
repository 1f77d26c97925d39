package confine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

const courseScope = "url:GET|/api/v1/courses/:id"

func checkAt(c *Confiner, scope, path string, now time.Time) Result {
	return c.Check(context.Background(), &Request{Scope: scope, Path: path, Roots: eng, Now: now})
}

func (m *model) set(kind Kind, id string, parentKind Kind, parent string) {
	m.mu.Lock()
	m.objects[cacheKey{kind, id}] = Object{true, id, parentKind, parent}
	m.mu.Unlock()
}

// memoised reports whether the confiner answers course id from the memo
// alone at now.
func memoised(c *Confiner, id string, now time.Time) bool {
	return c.Cache.memoInside(eng, []Ref{{Kind: KindCourse, ID: id}}, nil, now.UnixNano())
}

// The memoised answer of course 10 (chain 10 → 5 → 4 → 2) expires with
// the first of its chain's entries: account 4, cached 30 s before the
// course and the key's root, while their entries are still valid.
func TestMemoExpiresWithTheFirstChainObject(t *testing.T) {
	m := newModel()
	c := New(m, time.Minute, 0)
	t0 := time.Now()
	// Account 2 as its id, so that the key's root as written (its SIS id)
	// is first looked up with course 10.
	r := c.Check(context.Background(), &Request{Scope: "url:GET|/api/v1/groups/:group_id/users", Path: "/api/v1/groups/32/users", Roots: []string{"2"}, Now: t0})
	if r.Outcome != Inside {
		t.Fatalf("group 32: %v", r.Outcome)
	}
	t30 := t0.Add(30 * time.Second)
	if r := checkAt(c, courseScope, "/api/v1/courses/10", t30); r.Outcome != Inside {
		t.Fatalf("course 10: %v", r.Outcome)
	}
	if !memoised(c, "10", t30) {
		t.Fatal("course 10 was not memoised")
	}
	m.set(KindAccount, "4", KindAccount, "3") // moved in Canvas, not through the gate
	if r := checkAt(c, courseScope, "/api/v1/courses/10", t0.Add(59*time.Second)); r.Outcome != Inside {
		t.Errorf("before account 4's entry expires: %v", r.Outcome)
	}
	if memoised(c, "10", t0.Add(61*time.Second)) {
		t.Error("the memo outlives account 4's entry")
	}
	if r := checkAt(c, courseScope, "/api/v1/courses/10", t0.Add(61*time.Second)); r.Outcome != Outside {
		t.Errorf("after account 4's entry expired: %v, want outside", r.Outcome)
	}
}

// The key's roots are part of every answer: the memo expires with them.
func TestMemoExpiresWithTheRoots(t *testing.T) {
	m := newModel()
	c := New(m, time.Minute, 0)
	t0 := time.Now()
	if r := checkAt(c, courseScope, "/api/v1/courses/11", t0); r.Outcome != Outside { // caches the root alias
		t.Fatalf("course 11: %v", r.Outcome)
	}
	t30 := t0.Add(30 * time.Second)
	if r := checkAt(c, courseScope, "/api/v1/courses/12", t30); r.Outcome != Inside {
		t.Fatalf("course 12: %v", r.Outcome)
	}
	m.mu.Lock()
	m.alias[cacheKey{KindAccount, "sis_account_id:ENG"}] = "3" // the SIS id now names account 3
	m.mu.Unlock()
	if r := checkAt(c, courseScope, "/api/v1/courses/12", t0.Add(59*time.Second)); r.Outcome != Inside {
		t.Errorf("before the root's entry expires: %v", r.Outcome)
	}
	if r := checkAt(c, courseScope, "/api/v1/courses/12", t0.Add(61*time.Second)); r.Outcome != Outside {
		t.Errorf("after the root's entry expired: %v, want outside", r.Outcome)
	}
}

// Moved, Forget and Purge take effect for the next request, whatever
// object on the chain moved; a course moved out of the accounts and back.
func TestMemoDroppedOnMoveForgetAndPurge(t *testing.T) {
	m := newModel()
	c := New(m, time.Hour, 0)
	now := time.Now()
	warm := func(id string, want Outcome) {
		t.Helper()
		for range 2 { // the second answer comes from the memo
			if r := checkAt(c, courseScope, "/api/v1/courses/"+id, now); r.Outcome != want {
				t.Fatalf("course %s: %v, want %v", id, r.Outcome, want)
			}
		}
		if want == Inside && !memoised(c, id, now) {
			t.Fatalf("course %s was not memoised", id)
		}
	}

	// The course itself moves out (account 6, under 3) and back in (5).
	warm("12", Inside)
	m.set(KindCourse, "12", KindAccount, "6")
	c.Moved("url:PUT|/api/v1/courses/:id", "/api/v1/courses/12")
	warm("12", Outside)
	m.set(KindCourse, "12", KindAccount, "5")
	c.Moved("url:PUT|/api/v1/courses/:id", "/api/v1/courses/12")
	warm("12", Inside)

	// An account on the chain of course 10 (10 → 5 → 4 → 2) moves: the
	// course's memoised answer goes too.
	warm("10", Inside)
	m.set(KindAccount, "4", KindAccount, "3")
	c.Moved("url:PUT|/api/v1/accounts/:id", "/api/v1/accounts/4")
	warm("10", Outside)
	m.set(KindAccount, "4", KindAccount, "2")
	c.Cache.Forget(KindAccount, "4")
	warm("10", Inside)

	// Purge.
	m.set(KindCourse, "10", KindAccount, "3")
	warm("10", Inside) // still cached
	c.Cache.Purge()
	warm("10", Outside)
}

// blockingLookup answers course 12 with the account in answer, after
// release is closed; everything else from the model.
type blockingLookup struct {
	*model
	asked   chan struct{}
	release chan struct{}
	answer  string
}

func (b *blockingLookup) Lookup(ctx context.Context, kind Kind, id string) (Object, error) {
	if kind == KindCourse && id == "12" {
		b.asked <- struct{}{}
		<-b.release
		return Object{true, "12", KindAccount, b.answer}, nil
	}
	return b.model.Lookup(ctx, kind, id)
}

// A look-up under way when a move is recorded answered the old place: the
// requests waiting for it get that answer, but it is not kept, so the next
// request asks again.
func TestLookupUnderWayAtAMoveIsNotKept(t *testing.T) {
	lk := &blockingLookup{model: newModel(), asked: make(chan struct{}), release: make(chan struct{}), answer: "2"}
	c := New(lk, time.Hour, 0)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if r := checkAt(c, courseScope, "/api/v1/courses/12", time.Now()); r.Outcome != Inside {
			t.Errorf("the request that asked before the move: %v", r.Outcome)
		}
	}()
	<-lk.asked
	c.Moved("url:PUT|/api/v1/courses/:id", "/api/v1/courses/12") // course 12 moved to account 6
	close(lk.release)
	wg.Wait()
	lk.answer = "6"
	go func() { <-lk.asked }()
	if r := checkAt(c, courseScope, "/api/v1/courses/12", time.Now()); r.Outcome != Outside {
		t.Errorf("the request after the move: %v, want outside (the old answer was kept)", r.Outcome)
	}
}

func TestMemoBoundedAndKeysUnambiguous(t *testing.T) {
	c := New(newModel(), time.Hour, 50)
	tab := c.Cache.memoTable()
	for i := range 500 {
		tab.put(eng, KindCourse, fmt.Sprint(i), time.Now().Add(time.Hour).UnixNano(), c.Cache.Max)
		if len(tab.m) > 50 {
			t.Fatalf("%d memoised answers, max 50", len(tab.m))
		}
	}
	a := string(memoKey(nil, []string{"1", "23"}, KindCourse, "4"))
	b := string(memoKey(nil, []string{"12", "3"}, KindCourse, "4"))
	d := string(memoKey(nil, []string{"1"}, KindCourse, "234"))
	if a == b || a == d || b == d {
		t.Error("two different (roots, id) give the same memo key")
	}
}
