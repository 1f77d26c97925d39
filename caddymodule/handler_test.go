package caddymodule

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// requestCounter's cache hands out the series of the key's own id: in the
// store it was compiled for, for no key, and for a key of an earlier store
// after a reload (whose index now points at another key).
func TestRequestCounterFollowsKeysAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	write := func(ids ...string) {
		t.Helper()
		var keys []string
		for _, id := range ids {
			keys = append(keys, `{"id": "`+id+`", "scopes": ["url:GET|/api/v1/courses"]}`)
		}
		if err := os.WriteFile(path, []byte(`{"developer_keys": [`+strings.Join(keys, ",")+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("counter-a", "counter-b")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	off := caddy.Duration(0)
	h := &Handler{KeysFile: path, ReloadInterval: &off}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()

	want := func(k *policy.Key, label string) {
		t.Helper()
		for _, dec := range []gate.Label{gate.LabelAllowed, gate.LabelInsufficient} {
			for range 2 { // the first call fills the cache, the second reads it
				if got := h.requestCounter(k, dec); got != requestsTotal.WithLabelValues(label, dec.String()) {
					t.Fatalf("requestCounter(%s, %s) is not the %q series", label, dec, label)
				}
			}
		}
	}
	old := h.keystore.current.Load()
	oldA := old.Key("counter-a")
	want(oldA, "counter-a")
	want(old.Key("counter-b"), "counter-b")
	want(nil, unknownKeyLabel)

	write("counter-b", "counter-a") // same keys, other positions
	if _, err := h.keystore.reload(true); err != nil {
		t.Fatal(err)
	}
	cur := h.keystore.current.Load()
	if cur == old || cur.Key("counter-b").Index() != oldA.Index() {
		t.Fatal("the reload did not move counter-b to counter-a's old position")
	}
	want(cur.Key("counter-b"), "counter-b")
	want(cur.Key("counter-a"), "counter-a")
	want(oldA, "counter-a") // a request decided on the old store
	want(nil, unknownKeyLabel)
}
