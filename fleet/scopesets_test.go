package fleet

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/pgtest"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

const setsKeys = `{
  "scope_sets": {
    "roster-read": ["url:GET|/api/v1/courses/:course_id/users", "@course-read"],
    "course-read": ["url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"]
  },
  "developer_keys": [
    {"id": "vendor", "scopes": ["@roster-read", "url:GET|/api/v1/courses/:course_id/assignments"],
     "accounts": ["42"], "unconfined_scopes": ["@course-read"]},
    {"id": "plain", "scopes": ["url:GET|/api/v1/courses"]}
  ],
  "tokens": [
    {"sha256": "%s", "developer_key": "vendor", "scopes": ["@course-read"]},
    {"sha256": "%s", "developer_key": "vendor"}
  ],
  "clients": [
    {"client_id": "job", "secret_sha256": "%s", "developer_key": "vendor", "scopes": ["@course-read"]}
  ]
}`

// A keys file with named scope sets goes into the database and comes
// back with its sets and "@name" references, while the gate's store
// holds the expansion the file reader makes.
func TestScopeSetsRoundTrip(t *testing.T) {
	data := fmt.Sprintf(setsKeys, hexHash("tok-sets"), hexHash("tok-plain"), hexHash("secret"))
	kf, err := policy.ParseKeysFile("sets.json", []byte(data), policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rendered := render(t, kf)
	for _, want := range []string{`"scope_sets"`, `"@roster-read"`, `"roster-read": ["url:GET|/api/v1/courses/:course_id/users", "@course-read"]`} {
		if !bytes.Contains(rendered, []byte(want)) {
			t.Fatalf("the rendered file lacks %s:\n%s", want, rendered)
		}
	}
	dsn := pgtest.NewDatabase(t)
	c := connect(t, dsn)
	ctx := context.Background()
	if _, _, err := Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Import(ctx, c, kf); err != nil {
		t.Fatal(err)
	}
	got, _, err := Export(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if exported := render(t, got); !bytes.Equal(exported, rendered) {
		t.Fatalf("export differs from the imported file:\n%s\n%s", rendered, exported)
	}
	again, err := policy.ParseKeysFile("export.json", rendered, policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.DeveloperKeys[0].Scopes, kf.DeveloperKeys[0].Scopes) || !bytes.Equal(render(t, again), rendered) {
		t.Error("the exported file does not parse back to the same content")
	}
	// Importing it again changes nothing; dropping the sets (the same
	// scopes written out) is a change of what export gives back.
	if _, changed, err := Import(ctx, c, again); err != nil || changed {
		t.Fatalf("second import: changed %v, %v", changed, err)
	}

	// The gate on the database sees the scopes themselves.
	s, err := Start(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := s.Store().Key("vendor")
	want := []string{"url:GET|/api/v1/courses/:course_id/users", "url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id", "url:GET|/api/v1/courses/:course_id/assignments"}
	if k == nil || !slices.Equal(k.Scopes, want) {
		t.Fatalf("synced key scopes %v, want %v", k, want)
	}
	// explain and the admin API name the sets, as for a keys file.
	if !reflect.DeepEqual(k.ScopeSets, kf.DeveloperKeys[0].ScopeSets) || len(k.ScopeSets) != 1 {
		t.Errorf("synced key's scope sets %v, the file's %v", k.ScopeSets, kf.DeveloperKeys[0].ScopeSets)
	}
	if !slices.Equal(k.UnconfinedScopes, []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"}) {
		t.Errorf("synced unconfined scopes %v", k.UnconfinedScopes)
	}
	if e := s.Store().Lookup("tok-sets"); e == nil || !slices.Equal(e.Scopes, []string{"url:GET|/api/v1/courses", "url:GET|/api/v1/courses/:id"}) {
		t.Errorf("synced token %+v", e)
	}

	kf.Written = nil
	if _, changed, err := Import(ctx, c, kf); err != nil || !changed {
		t.Fatalf("import without the sets: changed %v, %v", changed, err)
	}
	if got, _, _ := Export(ctx, c); got.Written != nil || bytes.Contains(render(t, got), []byte("@")) {
		t.Errorf("sets still exported after an import without them:\n%s", render(t, got))
	}
}
