package usage

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRecordCountsExactlyUnderConcurrency(t *testing.T) {
	tb := NewTable(0)
	const workers, each = 8, 5000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				now := int64(1_000_000 + w*each + i)
				tb.Record("k", "url:GET|/api/v1/courses", true, now)
				if i%5 == 0 {
					tb.Record("k", "url:GET|/api/v1/users/:id", false, now)
				}
			}
		}()
	}
	wg.Wait()
	got := tb.Key("k")
	if len(got) != 2 {
		t.Fatalf("entries %+v", got)
	}
	if got[0].Scope != "url:GET|/api/v1/courses" || got[0].Allowed != workers*each || got[0].Denied != 0 {
		t.Errorf("courses: %+v", got[0])
	}
	if got[1].Denied != workers*each/5 || got[1].Allowed != 0 {
		t.Errorf("users: %+v", got[1])
	}
	if first, last := got[0].First.UnixNano(), got[0].Last.UnixNano(); first != 1_000_000 || last != 1_000_000+workers*each-1 {
		t.Errorf("first %d last %d", first, last)
	}
}

func TestTableIsBoundedByPairsSeen(t *testing.T) {
	tb := NewTable(1000)
	for k := range 300 {
		for s := range 5 {
			for range 3 { // repeats add no entries
				tb.Record(fmt.Sprintf("key-%d", k), fmt.Sprintf("url:GET|/api/v1/s%d", s), true, 1)
			}
		}
	}
	if tb.Len() != 1000 {
		t.Fatalf("Len %d, want the limit 1000", tb.Len())
	}
	if tb.Dropped() != (1500-1000)*3 {
		t.Fatalf("Dropped %d", tb.Dropped())
	}
	small := NewTable(0)
	for k := range 50 {
		small.Record(fmt.Sprintf("key-%d", k), "url:GET|/api/v1/courses", true, 1)
		small.Record(fmt.Sprintf("key-%d", k), "url:GET|/api/v1/courses", false, 2)
	}
	if small.Len() != 50 {
		t.Fatalf("Len %d, want one entry per (key, scope)", small.Len())
	}
	small.Record("", "url:GET|/api/v1/courses", true, 1)
	small.Record("k", "", true, 1)
	if small.Len() != 50 {
		t.Fatal("an empty key or scope was recorded")
	}
}

func TestDrainHandsOutEachCountOnce(t *testing.T) {
	tb := NewTable(0)
	tb.Record("k", "url:GET|/api/v1/courses", true, 10)
	tb.Record("k", "url:GET|/api/v1/courses", false, 20)
	d := tb.Drain()
	if len(d) != 1 || d[0].Allowed != 1 || d[0].Denied != 1 || d[0].Last.UnixNano() != 20 {
		t.Fatalf("first drain %+v", d)
	}
	if d := tb.Drain(); len(d) != 0 {
		t.Fatalf("second drain %+v, want nothing new", d)
	}
	tb.Record("k", "url:GET|/api/v1/courses", true, 30)
	if d := tb.Drain(); len(d) != 1 || d[0].Allowed != 1 || d[0].Denied != 0 {
		t.Fatalf("third drain %+v", d)
	}
	if e := tb.Key("k"); e[0].Allowed != 2 || e[0].Denied != 1 {
		t.Fatalf("totals changed by draining: %+v", e)
	}
}

func TestBuildReport(t *testing.T) {
	at := time.Unix(5, 0)
	entries := []Entry{
		{Scope: "url:GET|/api/v1/users/:id", Denied: 2, First: at, Last: at},
		{Scope: "url:GET|/api/v1/courses", Allowed: 7, First: at, Last: at},
	}
	granted := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id", "lti_service"}
	r := Build("vendor", entries, granted)
	if want := []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/users/:id"}; !slices.Equal(r.SuggestedScopes, want) {
		t.Errorf("suggested %q", r.SuggestedScopes)
	}
	if want := []string{"url:GET|/api/v1/users/:id"}; !slices.Equal(r.NeededNotGranted, want) {
		t.Errorf("needed %q", r.NeededNotGranted)
	}
	if want := []string{"url:GET|/api/v1/courses/:id"}; !slices.Equal(r.GrantedNotUsed, want) {
		t.Errorf("granted not used %q (non-URL scopes are not listed)", r.GrantedNotUsed)
	}
	if len(r.Used) != 2 || r.Used[0].Allowed != 7 {
		t.Errorf("used %+v", r.Used)
	}
	if r := Build("gone", entries, nil); r.GrantedNotUsed != nil || len(r.NeededNotGranted) != 1 {
		t.Errorf("unknown key's report %+v", r)
	}
}

// BenchmarkRecord is the gate's per-request cost of counting (an existing
// pair: a read lock, a map look-up, two atomics).
func BenchmarkRecord(b *testing.B) {
	tb := NewTable(0)
	key, scope := "vendor-25", "url:GET|/api/v1/courses/:course_id/assignments/:assignment_id/submissions"
	tb.Record(key, scope, true, 1)
	b.ReportAllocs()
	var now int64
	for b.Loop() {
		now++
		tb.Record(key, scope, true, now)
	}
}
