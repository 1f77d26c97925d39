package fleet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/internal/pgtest"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/scripts/bench/keysgen"
)

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := Connect(context.Background(), dsn, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

const smallKeys = `{
  "developer_keys": [
    {"id": "vendor-a", "name": "Vendor A", "scopes": ["url:GET|/api/v1/courses", "url:GET|/api/v1/users/:user_id/profile"]},
    {"id": "vendor-b", "scopes": ["url:GET|/api/v1/courses"], "hosts": ["canvas.example.edu"], "mode": "report",
     "accounts": ["42", "sis_account_id:ENG"], "unconfined_scopes": ["url:GET|/api/v1/courses"]},
    {"id": "open", "require_scopes": false, "enabled": false, "upstream_token": "{env.X}", "allow_upstream_credential_minting": true}
  ],
  "tokens": [
    {"sha256": "` + "%s" + `", "developer_key": "vendor-a", "label": "sync", "expires_at": "2030-01-01T00:00:00Z"},
    {"sha256": "` + "%s" + `", "developer_key": "vendor-b", "scopes": [], "revoked": true}
  ],
  "clients": [
    {"client_id": "job", "secret_sha256": "` + "%s" + `", "developer_key": "vendor-a", "token_ttl": "10m0s", "scopes": ["url:GET|/api/v1/courses"]}
  ]
}`

func hexHash(s string) string { h := policy.HashToken(s); return fmt.Sprintf("%x", h[:]) }

func smallFile(t testing.TB) *policy.KeysFile {
	t.Helper()
	data := fmt.Sprintf(smallKeys, hexHash("tok-a"), hexHash("tok-b"), hexHash("secret"))
	kf, err := policy.ParseKeysFile("small.json", []byte(data), policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

func render(t testing.TB, kf *policy.KeysFile) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteKeysFile(&b, kf); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := connect(t, dsn)
	ctx := context.Background()
	from, to, err := Migrate(ctx, c)
	if err != nil || from != 0 || to != SchemaVersion {
		t.Fatalf("first migrate: %d -> %d, %v", from, to, err)
	}
	schema := func() string {
		var s string
		err := c.QueryRow(ctx, `SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, column_name)
			FROM information_schema.columns WHERE table_schema = 'public'`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := schema()
	from, to, err = Migrate(ctx, c)
	if err != nil || from != SchemaVersion || to != SchemaVersion {
		t.Fatalf("second migrate: %d -> %d, %v", from, to, err)
	}
	if after := schema(); after != before {
		t.Errorf("second migrate changed the schema:\n%s\n%s", before, after)
	}
	var n int
	c.QueryRow(ctx, `SELECT count(*) FROM canvas_scopes_schema`).Scan(&n)
	if n != SchemaVersion {
		t.Errorf("%d schema rows, want %d", n, SchemaVersion)
	}
	if rev, _ := Revision(ctx, c); rev != 0 {
		t.Errorf("revision %d after migrating, want 0", rev)
	}
}

func TestImportExportRoundTrip(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := connect(t, dsn)
	ctx := context.Background()
	if _, _, err := Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	kf := smallFile(t)
	rev, changed, err := Import(ctx, c, kf)
	if err != nil || !changed || rev != 1 {
		t.Fatalf("import: rev %d changed %v err %v", rev, changed, err)
	}
	got, _, err := Export(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := render(t, kf), render(t, got); !bytes.Equal(a, b) {
		t.Fatalf("export differs from import:\n%s\n%s", a, b)
	}
	// The rendered file parses back to the same content.
	again, err := policy.ParseKeysFile("export.json", render(t, got), policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(render(t, again), render(t, kf)) {
		t.Error("the exported file does not parse back to the same content")
	}
	rev2, changed, err := Import(ctx, c, kf)
	if err != nil || changed || rev2 != rev {
		t.Fatalf("second import of the same file: rev %d changed %v err %v", rev2, changed, err)
	}
	// Dropping a token and changing a key is one new revision.
	kf.Tokens = kf.Tokens[:1]
	kf.DeveloperKeys[0].Enabled = false
	rev3, changed, err := Import(ctx, c, kf)
	if err != nil || !changed || rev3 != rev+1 {
		t.Fatalf("changed import: rev %d changed %v err %v", rev3, changed, err)
	}
	got, _, _ = Export(ctx, c)
	if !bytes.Equal(render(t, kf), render(t, got)) {
		t.Error("export after a changed import differs")
	}
}

func TestImportExport100kAndInitialSync(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	var buf bytes.Buffer
	if _, err := keysgen.Write(&buf, keysgen.Options{Keys: 1000, Tokens: 100_000, Seed: 7, SubsetShare: 0.1, ExpiringShare: 0.1, RevokedShare: 0.01}); err != nil {
		t.Fatal(err)
	}
	kf, err := policy.ParseKeysFile("scale.json", buf.Bytes(), policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.NewDatabase(t)
	c := connect(t, dsn)
	ctx := context.Background()
	Migrate(ctx, c)
	start := time.Now()
	if _, _, err := Import(ctx, c, kf); err != nil {
		t.Fatal(err)
	}
	t.Logf("db import of 100,000 tokens / 1,000 keys: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	got, _, err := Export(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("db export: %v", time.Since(start).Round(time.Millisecond))
	if a, b := render(t, kf), render(t, got); !bytes.Equal(a, b) {
		t.Fatalf("export of the 100k file differs from the file (%d vs %d bytes)", len(a), len(b))
	}
	start = time.Now()
	if _, changed, err := Import(ctx, c, kf); err != nil || changed {
		t.Fatalf("re-import: changed %v, %v", changed, err)
	}
	t.Logf("idempotent re-import: %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	s, err := Start(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	took := time.Since(start)
	t.Logf("initial sync (connect, migrate check, read, compile): %v (target 1s)", took.Round(time.Millisecond))
	if s.Store().TokenCount() != 100_000 || len(s.Store().Keys()) != 1000 {
		t.Fatalf("synced %d tokens, %d keys", s.Store().TokenCount(), len(s.Store().Keys()))
	}
	if took > 3*time.Second {
		t.Errorf("initial sync took %v, more than 3× the 1 s target", took)
	}

	// One change at a time on top of 100k tokens: time from the commit to
	// the new store being in place on this instance.
	key := kf.DeveloperKeys[0].ID
	var lat []time.Duration
	for i := range 50 {
		tok, id, err := CreateToken(ctx, c, TokenOptions{Key: key, Label: fmt.Sprint("t", i)})
		if err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		waitFor(t, func() bool { return s.Store().Lookup(tok) != nil })
		lat = append(lat, time.Since(committed))
		if err := RevokeToken(ctx, c, id); err != nil {
			t.Fatal(err)
		}
		committed = time.Now()
		waitFor(t, func() bool { return s.Store().Lookup(tok).Revoked })
		lat = append(lat, time.Since(committed))
	}
	slices.Sort(lat)
	t.Logf("change applied after commit, 100 changes on a 100k-token store: p50 %v, max %v; last apply after its notification %v",
		lat[len(lat)/2], lat[len(lat)-1], s.Stats().LastApply)
	if lat[len(lat)/2] > 50*time.Millisecond {
		t.Errorf("median propagation %v, more than 5× the 10 ms target", lat[len(lat)/2])
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5 s")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func startedFleet(t *testing.T, opts Options) (*pgx.Conn, *Syncer) {
	t.Helper()
	if opts.DSN == "" {
		opts.DSN = pgtest.NewDatabase(t)
	}
	c := connect(t, opts.DSN)
	ctx := context.Background()
	if _, _, err := Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Import(ctx, c, smallFile(t)); err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return c, s
}

// equalsTables checks the syncer's store against an export of the tables.
func equalsTables(t *testing.T, c *pgx.Conn, s *Syncer) {
	t.Helper()
	kf, rev, err := Export(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Store()
	if s.Stats().Revision != rev {
		t.Errorf("syncer at revision %d, database at %d", s.Stats().Revision, rev)
	}
	if st.TokenCount() != len(kf.Tokens) {
		t.Errorf("store has %d tokens, tables %d", st.TokenCount(), len(kf.Tokens))
	}
	for _, tok := range kf.Tokens {
		e := st.LookupHash(tok.SHA256)
		if e == nil || e.Revoked != tok.Revoked || e.Label != tok.Label || e.Key.ID != tok.DeveloperKey {
			t.Fatalf("token %s: store %+v, table %+v", policy.TokenID(tok.SHA256), e, tok)
		}
	}
	for _, k := range kf.DeveloperKeys {
		sk := st.Key(k.ID)
		if sk == nil || sk.Enabled != k.Enabled || !slices.Equal(sk.Scopes, k.Scopes) {
			t.Fatalf("key %s differs", k.ID)
		}
	}
}

func TestConcurrentWritersConverge(t *testing.T) {
	c, s := startedFleet(t, Options{})
	ctx := context.Background()
	dsn := s.opts.DSN
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc, err := Connect(ctx, dsn, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer wc.Close(ctx)
			var ids []string
			for i := range 100 {
				if i%3 == 2 {
					if err := RevokeToken(ctx, wc, ids[len(ids)-1]); err != nil {
						errs <- err
						return
					}
					continue
				}
				key := []string{"vendor-a", "vendor-b"}[i%2]
				_, id, err := CreateToken(ctx, wc, TokenOptions{Key: key, Label: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					errs <- err
					return
				}
				ids = append(ids, id)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want, _ := Revision(ctx, c)
	if want != 1+800 {
		t.Errorf("database at revision %d after 800 changes on revision 1", want)
	}
	waitFor(t, func() bool { return s.Stats().Revision == want })
	equalsTables(t, c, s)
}

func TestListenerKilledConverges(t *testing.T) {
	c, s := startedFleet(t, Options{PollInterval: time.Second})
	ctx := context.Background()
	var created []string
	for i := range 20 {
		if i == 5 || i == 12 {
			if _, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, ApplicationName); err != nil {
				t.Fatal(err)
			}
		}
		tok, _, err := CreateToken(ctx, c, TokenOptions{Key: "vendor-a"})
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, tok)
	}
	done := time.Now()
	waitFor(t, func() bool {
		for _, tok := range created {
			if s.Store().Lookup(tok) == nil {
				return false
			}
		}
		return true
	})
	t.Logf("converged %v after the last change; reconnects %d", time.Since(done), s.Stats().Reconnects)
	if took := time.Since(done); took > 2*time.Second {
		t.Errorf("converged after %v, want within the 1 s poll interval (+ reconnect)", took)
	}
	if s.Stats().Reconnects == 0 {
		t.Error("the listener was killed but the syncer never reconnected")
	}
	equalsTables(t, c, s)
}

func TestSnapshotFileServesWhileDown(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "snapshot.json")
	c, s := startedFleet(t, Options{SnapshotFile: snap})
	tok, id, err := CreateToken(context.Background(), c, TokenOptions{Key: "vendor-a", Label: "snap"})
	if err != nil {
		t.Fatal(err)
	}
	RevokeToken(context.Background(), c, id)
	waitFor(t, func() bool {
		e := s.Store().Lookup(tok)
		return e != nil && e.Revoked
	})
	var fi os.FileInfo
	waitFor(t, func() bool {
		data, err := os.ReadFile(snap)
		fi, _ = os.Stat(snap)
		return err == nil && bytes.Contains(data, []byte(fmt.Sprintf(`"revision":%d`, s.Stats().Revision)))
	})
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file mode %v, want 0600", fi.Mode().Perm())
	}
	// A second instance whose database does not answer starts from it.
	down, err := Start(context.Background(), Options{DSN: "postgres://postgres@127.0.0.1:1/none?sslmode=disable", SnapshotFile: snap, StartTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	if e := down.Store().Lookup(tok); e == nil || !e.Revoked {
		t.Error("the revoked token is not revoked in the snapshot")
	}
	if down.Store().Lookup("tok-a") == nil || down.Store().Lookup("unknown") != nil {
		t.Error("the snapshot does not hold the same tokens")
	}
	if down.Stats().Revision != s.Stats().Revision {
		t.Errorf("snapshot revision %d, want %d", down.Stats().Revision, s.Stats().Revision)
	}
	// Without a snapshot, an unreachable database is a start error.
	if _, err := Start(context.Background(), Options{DSN: "postgres://postgres@127.0.0.1:1/none?sslmode=disable", StartTimeout: time.Second}); err == nil {
		t.Error("start without database or snapshot succeeded")
	}
}

// Deleting a key (a full compile) and changing clients reach the store.
func TestSyncKeyDeletionAndClients(t *testing.T) {
	c, s := startedFleet(t, Options{})
	ctx := context.Background()
	if s.Store().Client("job") == nil || s.Store().Lookup("tok-b") == nil {
		t.Fatal("initial store lacks the client or tok-b")
	}
	kf := smallFile(t)
	kf.DeveloperKeys = slices.DeleteFunc(kf.DeveloperKeys, func(k policy.DeveloperKey) bool { return k.ID == "vendor-b" })
	kf.Tokens = slices.DeleteFunc(kf.Tokens, func(t policy.Token) bool { return t.DeveloperKey == "vendor-b" })
	kf.Clients[0].Scopes = []string{"url:GET|/api/v1/users/:user_id/profile"}
	if _, _, err := Import(ctx, c, kf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Store().Key("vendor-b") == nil })
	if s.Store().Lookup("tok-b") != nil {
		t.Error("the deleted key's token is still found")
	}
	if cl := s.Store().Client("job"); cl == nil || !slices.Equal(cl.Scopes, kf.Clients[0].Scopes) || cl.Key != s.Store().Key("vendor-a") {
		t.Errorf("client not updated: %+v", cl)
	}
	kf.Clients = nil
	if _, _, err := Import(ctx, c, kf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Store().Client("job") == nil })
	equalsTables(t, c, s)
}

// freezingProxy forwards TCP to PostgreSQL until frozen; frozen, it keeps
// the connections open and forwards nothing (a partition without resets).
type freezingProxy struct {
	addr   string
	frozen atomic.Bool
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &freezingProxy{addr: l.Addr().String()}
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			for p.frozen.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				dst.Close()
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.frozen.Load() {
				continue // never answered: a connect attempt hangs
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return p
}

// A server that stops answering without closing the connection: the
// syncer notices within QueryTimeout, keeps serving, and resyncs when the
// path heals.
func TestSyncSurvivesSilentPartition(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, _ := url.Parse(dsn)
	proxy := newFreezingProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.addr
	c, s := startedFleet(t, Options{DSN: dsn})
	s.Close()
	s2, err := Start(context.Background(), Options{DSN: viaProxy.String(), PollInterval: 100 * time.Millisecond, QueryTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	proxy.frozen.Store(true)
	frozenAt := time.Now()
	tok, _, err := CreateToken(context.Background(), c, TokenOptions{Key: "vendor-a"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if s2.Store().Lookup("tok-a") == nil {
		t.Fatal("the last good store was dropped")
	}
	if s2.Store().Lookup(tok) != nil {
		t.Fatal("a change arrived through a frozen connection")
	}
	if age := time.Since(s2.Stats().LastSync); age < time.Second {
		t.Errorf("sync age %v while partitioned, want it to grow", age)
	}
	if s2.Stats().SyncErrors == 0 {
		t.Error("no sync error counted while partitioned")
	}
	proxy.frozen.Store(false)
	healed := time.Now()
	waitFor(t, func() bool { return s2.Store().Lookup(tok) != nil })
	t.Logf("partition %v: change in force %v after the path healed; reconnects %d", healed.Sub(frozenAt).Round(time.Millisecond), time.Since(healed).Round(time.Millisecond), s2.Stats().Reconnects)
}
