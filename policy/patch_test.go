package policy

import (
	"slices"
	"testing"
	"time"
)

// A patched store must answer exactly as a store compiled whole from the
// resulting file: added, changed, removed tokens and a changed key.
func TestApplyMatchesCompile(t *testing.T) {
	base := loadTestStore(t)
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	req := Request{Method: "GET", Path: "/api/v1/courses", Host: "canvas.example.edu", Now: now}

	vendorA := DeveloperKey{ID: "vendor-a", Name: "Vendor A", Scopes: []string{"url:GET|/api/v1/courses/:course_id/assignments"}, RequireScopes: true, Enabled: true}
	hA, hNarrow, hDropped, hExp := HashToken("tok-A"), HashToken("tok-NARROW"), HashToken("tok-DROPPED"), HashToken("tok-EXP")
	hNew := HashToken("tok-NEW")
	p := &Patch{
		Keys: []DeveloperKey{vendorA},
		Tokens: []Token{
			{SHA256: hA, DeveloperKey: "vendor-a", Label: "sync"},
			{SHA256: hNarrow, DeveloperKey: "vendor-a", Scopes: []string{"url:GET|/api/v1/courses"}, HasScopes: true},
			{SHA256: hExp, DeveloperKey: "vendor-a", Revoked: true},
			{SHA256: hNew, DeveloperKey: "open", Label: "new"},
		},
		Removed: [][32]byte{hDropped, HashToken("tok-OFF")},
	}
	ns, err := base.Apply("db", p, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ns.TokenCount(), base.TokenCount()-1; got != want {
		t.Errorf("TokenCount = %d, want %d", got, want)
	}
	if ns.Lookup("tok-OFF") != nil || ns.Lookup("tok-DROPPED") != nil {
		t.Error("removed tokens are still found")
	}
	if base.Lookup("tok-OFF") == nil || base.Lookup("tok-NEW") != nil {
		t.Error("Apply changed the store it was applied to")
	}
	// vendor-a lost url:GET|/api/v1/courses: tok-A is now refused, and
	// tok-NARROW, which held that scope, is revoked (Canvas semantics).
	if d := ns.Decide("tok-A", req); d.Outcome != InsufficientScope {
		t.Errorf("tok-A after scope removal: %v, want insufficient_scope", d.Outcome)
	}
	if d := ns.Decide("tok-NARROW", req); d.Outcome != Revoked {
		t.Errorf("tok-NARROW after scope removal: %v, want revoked", d.Outcome)
	}
	if d := base.Decide("tok-A", req); d.Outcome != Allowed {
		t.Errorf("old store: tok-A %v, want allowed", d.Outcome)
	}
	if d := ns.Decide("tok-NEW", req); d.Outcome != Allowed || d.Token.ID != TokenID(hNew) {
		t.Errorf("tok-NEW: %v %q", d.Outcome, d.Token.ID)
	}
	if k := ns.Key("vendor-a"); k.Index() != base.Key("vendor-a").Index() || ns.Keys()[k.Index()] != k {
		t.Error("changed key is not at its old index")
	}
	if ns.Key("open") != base.Key("open") {
		t.Error("unchanged key was not shared")
	}
	if !slices.Equal(ns.Key("vendor-a").Scopes, vendorA.Scopes) {
		t.Error("key scopes not replaced")
	}
	if ns.OverlayLen() != 6 {
		t.Errorf("OverlayLen = %d, want 6", ns.OverlayLen())
	}
	// A second patch builds on the overlay of the first.
	ns2, err := ns.Apply("db", &Patch{Removed: [][32]byte{hNew}}, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns2.Lookup("tok-NEW") != nil || ns.Lookup("tok-NEW") == nil || ns2.TokenCount() != ns.TokenCount()-1 {
		t.Error("second patch: removal not applied or leaked into the first")
	}
	if _, err := ns.Apply("db", &Patch{Tokens: []Token{{SHA256: hNew, DeveloperKey: "nope"}}}, CompileOptions{}); err == nil {
		t.Error("a token of an unknown key was accepted")
	}
}
