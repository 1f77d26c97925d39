package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/pgtest"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

// Instances flushing at the same time add up exactly, and first and last
// seen are the fleet's earliest and latest.
func TestUsageConcurrentBatchesAddUp(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := connect(t, dsn)
	ctx := context.Background()
	if _, _, err := Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	const writers, batches = 4, 50
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	scopes := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/users/:user_id/profile", "url:POST|/api/v1/courses/:course_id/assignments"}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := Connect(ctx, dsn, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for b := range batches {
				at := base.Add(time.Duration(w*batches+b) * time.Second)
				var batch []usage.Delta
				// Scopes in a different order per writer: row locks must
				// still not deadlock.
				for i := range scopes {
					s := scopes[(i+w)%len(scopes)]
					batch = append(batch, usage.Delta{Key: "vendor", Scope: s, Allowed: 2, Denied: 1, First: at, Last: at})
				}
				// The same pair twice in one batch is summed, not refused.
				batch = append(batch, usage.Delta{Key: "other", Scope: scopes[0], Allowed: 1, First: at, Last: at},
					usage.Delta{Key: "other", Scope: scopes[0], Denied: 1, First: at, Last: at})
				if err := AddUsage(ctx, conn, batch); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := KeyUsage(ctx, c, "vendor")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(scopes) {
		t.Fatalf("%d scopes, want %d: %+v", len(got), len(scopes), got)
	}
	lastAt := base.Add(time.Duration(writers*batches-1) * time.Second)
	for i, e := range got {
		if i > 0 && got[i-1].Scope >= e.Scope {
			t.Errorf("not sorted by scope: %q before %q", got[i-1].Scope, e.Scope)
		}
		if e.Allowed != 2*writers*batches || e.Denied != writers*batches {
			t.Errorf("%s: allowed %d denied %d, want %d and %d", e.Scope, e.Allowed, e.Denied, 2*writers*batches, writers*batches)
		}
		if !e.First.Equal(base) || !e.Last.Equal(lastAt) {
			t.Errorf("%s: first %v last %v, want %v and %v", e.Scope, e.First, e.Last, base, lastAt)
		}
	}
	other, err := KeyUsage(ctx, c, "other")
	if err != nil || len(other) != 1 || other[0].Allowed != writers*batches || other[0].Denied != writers*batches {
		t.Errorf("other: %+v, %v", other, err)
	}
	if none, err := KeyUsage(ctx, c, "nobody"); err != nil || len(none) != 0 {
		t.Errorf("unknown key: %+v, %v", none, err)
	}
}
