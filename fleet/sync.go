package fleet

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Options configure a Syncer.
type Options struct {
	DSN string
	// Compile resolves upstream_token placeholders.
	Compile policy.CompileOptions
	// PollInterval is how often the revision is read when no
	// notification came (it doubles as a liveness check). Default 1s.
	PollInterval time.Duration
	// StartTimeout bounds the first connection and sync. Default 10s.
	StartTimeout time.Duration
	// QueryTimeout bounds a poll or an incremental read; a server that
	// stops answering without closing the connection (a partition) is
	// then dropped and reconnected to. Default 5s.
	QueryTimeout time.Duration
	// SnapshotFile, when set, receives the last synced state (0600,
	// atomically) and is read at start when the database is unreachable.
	SnapshotFile string
	// OnStore receives every new Store, in order.
	OnStore func(*policy.Store)
	// OnRevocations receives stored OAuth revocations: all of them on a
	// full sync, new ones afterwards.
	OnRevocations func([]OAuthRevocation)
	Logger        *zap.Logger
}

// Stats are the Syncer's counters, for metrics.
type Stats struct {
	Revision   int64
	LastSync   time.Time // last successful read of the database (or the snapshot's time)
	SyncErrors uint64
	Reconnects uint64
	Queries    uint64 // statements sent by the syncer's connections
	// LastApply is how long the last incremental change took from the
	// notification (or poll) to the new store being in place.
	LastApply time.Duration
}

// ApplicationName names the sync connections in pg_stat_activity.
const ApplicationName = "canvas_scopes_sync"

// fullSyncTimeout bounds a full read: past it the connection is dropped
// and reopened.
const fullSyncTimeout = time.Minute

// maxOverlay bounds the tokens patched over a compiled store before the
// store is compiled whole again (each patch copies the overlay).
const maxOverlay = 4096

// Syncer keeps a policy.Store equal to the database's content.
type Syncer struct {
	opts   Options
	log    *zap.Logger
	cancel context.CancelFunc
	done   chan struct{}

	current    atomic.Pointer[policy.Store]
	rev        atomic.Int64
	lastSync   atomic.Int64 // unix nanos
	syncErrors atomic.Uint64
	reconnects atomic.Uint64
	queries    atomic.Uint64
	lastApply  atomic.Int64

	m        *model // owned by the sync goroutine after Start
	snapMu   sync.Mutex
	snapBusy bool
	snapWG   sync.WaitGroup // in-flight snapshot writes, awaited by Close
	snapRev  int64          // revision last handed to the snapshot writer (sync goroutine only)
}

// model is the synced content, the source for compiling and patching.
type model struct {
	rev         int64
	keys        map[string]keyRow
	tokens      map[[32]byte]tokenRow
	byKey       map[string]map[[32]byte]struct{}
	clients     map[string]clientRow
	revocations map[[16]byte]OAuthRevocation
}

func newModel() *model {
	return &model{keys: map[string]keyRow{}, tokens: map[[32]byte]tokenRow{}, byKey: map[string]map[[32]byte]struct{}{},
		clients: map[string]clientRow{}, revocations: map[[16]byte]OAuthRevocation{}}
}

func (m *model) putToken(t tokenRow) {
	if old, ok := m.tokens[t.SHA256]; ok && old.DeveloperKey != t.DeveloperKey {
		delete(m.byKey[old.DeveloperKey], t.SHA256)
	}
	m.tokens[t.SHA256] = t
	set := m.byKey[t.DeveloperKey]
	if set == nil {
		set = map[[32]byte]struct{}{}
		m.byKey[t.DeveloperKey] = set
	}
	set[t.SHA256] = struct{}{}
}

func (m *model) dropToken(h [32]byte) {
	if old, ok := m.tokens[h]; ok {
		delete(m.byKey[old.DeveloperKey], h)
		delete(m.tokens, h)
	}
}

// keysFile is the model as a keys file, in stored order. Tokens and
// clients whose key is missing are left out (and so denied): writers never
// store them, and Compile needs every reference to resolve.
func (m *model) keysFile(sorted bool) *policy.KeysFile {
	kf := &policy.KeysFile{DeveloperKeys: make([]policy.DeveloperKey, 0, len(m.keys)), Tokens: make([]policy.Token, 0, len(m.tokens))}
	keys := make([]keyRow, 0, len(m.keys))
	for _, k := range m.keys {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b keyRow) int {
		if a.Position != b.Position {
			return int(a.Position - b.Position)
		}
		return compareStrings(a.ID, b.ID)
	})
	for _, k := range keys {
		kf.DeveloperKeys = append(kf.DeveloperKeys, k.DeveloperKey)
	}
	if sorted {
		rows := make([]tokenRow, 0, len(m.tokens))
		for _, t := range m.tokens {
			rows = append(rows, t)
		}
		slices.SortFunc(rows, func(a, b tokenRow) int {
			if a.Position != b.Position {
				return int(a.Position - b.Position)
			}
			return slices.Compare(a.SHA256[:], b.SHA256[:])
		})
		for _, t := range rows {
			if _, ok := m.keys[t.DeveloperKey]; ok {
				kf.Tokens = append(kf.Tokens, t.Token)
			}
		}
	} else {
		for _, t := range m.tokens {
			if _, ok := m.keys[t.DeveloperKey]; ok {
				kf.Tokens = append(kf.Tokens, t.Token)
			}
		}
	}
	kf.Clients = m.clientList()
	return kf
}

func (m *model) clientList() []policy.Client {
	rows := make([]clientRow, 0, len(m.clients))
	for _, c := range m.clients {
		if _, ok := m.keys[c.DeveloperKey]; ok {
			rows = append(rows, c)
		}
	}
	slices.SortFunc(rows, func(a, b clientRow) int {
		if a.Position != b.Position {
			return int(a.Position - b.Position)
		}
		return compareStrings(a.ClientID, b.ClientID)
	})
	out := make([]policy.Client, len(rows))
	for i, c := range rows {
		out[i] = c.Client
	}
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Start connects, migrates, reads everything and keeps syncing in the
// background. When the database cannot be reached within StartTimeout it
// starts from SnapshotFile if one is configured and readable, and fails
// otherwise.
func Start(ctx context.Context, opts Options) (*Syncer, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if _, err := ParseDSN(opts.DSN); err != nil {
		return nil, err
	}
	s := &Syncer{opts: opts, log: opts.Logger, done: make(chan struct{}), snapRev: -1}
	startCtx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	conn, err := s.connect(startCtx)
	if err == nil {
		_, _, err = Migrate(startCtx, conn)
		if err == nil {
			err = s.fullSync(startCtx, conn)
		}
		if err != nil {
			conn.Close(context.Background())
			conn = nil
		}
	}
	cancel()
	if err != nil {
		if opts.SnapshotFile == "" {
			return nil, err
		}
		snapErr := s.loadSnapshot()
		if snapErr != nil {
			return nil, fmt.Errorf("%v; and the snapshot_file cannot be used: %v", err, snapErr)
		}
		s.syncErrors.Add(1)
		s.log.Warn("database unreachable at start; serving the snapshot file until it answers",
			zap.String("snapshot_file", opts.SnapshotFile), zap.Int64("revision", s.rev.Load()), zap.Error(err))
	}
	loopCtx, stop := context.WithCancel(context.Background())
	s.cancel = stop
	go s.run(loopCtx, conn)
	return s, nil
}

// Close stops syncing; the last store stays readable.
func (s *Syncer) Close() {
	s.cancel()
	<-s.done
	s.snapWG.Wait()
}

// Store is the current snapshot.
func (s *Syncer) Store() *policy.Store { return s.current.Load() }

// Stats returns the counters.
func (s *Syncer) Stats() Stats {
	return Stats{
		Revision: s.rev.Load(), LastSync: time.Unix(0, s.lastSync.Load()),
		SyncErrors: s.syncErrors.Load(), Reconnects: s.reconnects.Load(),
		Queries: s.queries.Load(), LastApply: time.Duration(s.lastApply.Load()),
	}
}

// queryCounter counts the statements a connection sends.
type queryCounter struct{ n *atomic.Uint64 }

func (q queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}
func (queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *Syncer) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := ParseDSN(s.opts.DSN)
	if err != nil {
		return nil, err
	}
	// A connect attempt into a partition must not outlast a query.
	if limit := max(s.opts.QueryTimeout, time.Second); cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > limit {
		cfg.ConnectTimeout = limit
	}
	cfg.Tracer = queryCounter{&s.queries}
	cfg.RuntimeParams["application_name"] = ApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database unreachable: %s", safeErr(err))
	}
	// LISTEN first, then read: a change committed between the two is
	// then either in what is read or announced afterwards.
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("LISTEN: %s", safeErr(err))
	}
	return conn, nil
}

func (s *Syncer) run(ctx context.Context, conn *pgx.Conn) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for {
		if conn == nil {
			var err error
			conn, err = s.connect(ctx)
			if err == nil {
				fctx, fcancel := context.WithTimeout(ctx, fullSyncTimeout)
				err = s.fullSync(fctx, conn)
				fcancel()
				if err != nil {
					conn.Close(context.Background())
					conn = nil
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.syncErrors.Add(1)
				s.log.Warn("database sync failed; serving the last good snapshot", zap.Error(err), zap.Duration("retry_in", backoff))
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			s.log.Info("database sync resumed", zap.Int64("revision", s.rev.Load()))
		}
		err := s.follow(ctx, conn)
		conn.Close(context.Background())
		conn = nil
		if ctx.Err() != nil {
			return
		}
		s.syncErrors.Add(1)
		s.reconnects.Add(1)
		s.log.Warn("database connection lost; reconnecting and resyncing in full", zap.Error(err))
	}
}

// follow waits for notifications on conn and polls the revision every
// PollInterval, until the connection fails.
func (s *Syncer) follow(ctx context.Context, conn *pgx.Conn) error {
	for {
		wait, cancel := context.WithTimeout(ctx, s.opts.PollInterval)
		n, err := conn.WaitForNotification(wait)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		started := time.Now()
		if err != nil {
			// A poll: the wait timed out and the connection is usable.
			if conn.IsClosed() || wait.Err() == nil {
				return err
			}
			// One cheap statement that doubles as a liveness check.
			// A server that stopped answering (a half-open connection)
			// must not hold the loop: the timeout closes it and the
			// syncer reconnects.
			var rev int64
			qctx, qcancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
			err := conn.QueryRow(qctx, `SELECT rev FROM canvas_scopes_revision`).Scan(&rev)
			qcancel()
			if err != nil {
				return err
			}
			if rev == s.rev.Load() {
				s.lastSync.Store(time.Now().UnixNano())
				s.saveSnapshot()
				continue
			}
		} else if rev, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil && rev <= s.rev.Load() {
			s.lastSync.Store(time.Now().UnixNano())
			continue // already read
		}
		rctx, rcancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
		err = s.incremental(rctx, conn, started)
		rcancel()
		if err != nil {
			return err
		}
	}
}

// readTx runs fn in a read-only REPEATABLE READ transaction: the revision
// row and the changed rows are read from one snapshot.
func readTx(ctx context.Context, conn *pgx.Conn, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func (s *Syncer) fullSync(ctx context.Context, conn *pgx.Conn) error {
	started := time.Now()
	m := newModel()
	err := readTx(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT rev FROM canvas_scopes_revision`).Scan(&m.rev); err != nil {
			return err
		}
		keys, err := readKeys(ctx, tx, `WHERE NOT deleted`)
		if err != nil {
			return err
		}
		for _, k := range keys {
			m.keys[k.ID] = k
		}
		var count int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM canvas_scopes_tokens WHERE NOT deleted`).Scan(&count); err != nil {
			return err
		}
		m.tokens = make(map[[32]byte]tokenRow, count)
		if err := readTokens(ctx, tx, `WHERE NOT deleted`, func(t *tokenRow) { m.putToken(*t) }); err != nil {
			return err
		}
		clients, err := readClients(ctx, tx, `WHERE NOT deleted`)
		if err != nil {
			return err
		}
		for _, c := range clients {
			m.clients[c.ClientID] = c
		}
		revs, err := readRevocations(ctx, tx, `WHERE expires_at > now()`)
		for _, r := range revs {
			m.revocations[r.ID] = r
		}
		return err
	})
	if err != nil {
		return err
	}
	read := time.Since(started)
	store, err := policy.Compile("database", m.keysFile(false), s.opts.Compile)
	if err != nil {
		return fmt.Errorf("the database's content does not compile: %w", err)
	}
	s.m = m
	s.publish(store, m.rev)
	if s.opts.OnRevocations != nil && len(m.revocations) > 0 {
		s.opts.OnRevocations(revocationList(m.revocations))
	}
	s.log.Info("database synced in full", zap.Int64("revision", m.rev), zap.Int("developer_keys", len(m.keys)),
		zap.Int("tokens", len(m.tokens)), zap.Int("clients", len(m.clients)),
		zap.Duration("read_time", read), zap.Duration("total_time", time.Since(started)))
	s.saveSnapshot()
	return nil
}

func revocationList(m map[[16]byte]OAuthRevocation) []OAuthRevocation {
	out := make([]OAuthRevocation, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

func (s *Syncer) publish(store *policy.Store, rev int64) {
	s.current.Store(store)
	s.rev.Store(rev)
	s.lastSync.Store(time.Now().UnixNano())
	if s.opts.OnStore != nil {
		s.opts.OnStore(store)
	}
}

// incremental reads the rows changed since the model's revision and
// patches the store (or compiles it whole when a patch would be large).
func (s *Syncer) incremental(ctx context.Context, conn *pgx.Conn, started time.Time) error {
	m := s.m
	var (
		rev     int64
		keys    []keyRow
		tokens  []tokenRow
		clients []clientRow
		revs    []OAuthRevocation
	)
	err := readTx(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT rev FROM canvas_scopes_revision`).Scan(&rev); err != nil {
			return err
		}
		if rev == m.rev {
			return nil
		}
		var err error
		if keys, err = readKeys(ctx, tx, `WHERE rev > $1`, m.rev); err != nil {
			return err
		}
		if err = readTokens(ctx, tx, `WHERE rev > $1`, func(t *tokenRow) { tokens = append(tokens, *t) }, m.rev); err != nil {
			return err
		}
		if clients, err = readClients(ctx, tx, `WHERE rev > $1`, m.rev); err != nil {
			return err
		}
		revs, err = readRevocations(ctx, tx, `WHERE rev > $1`, m.rev)
		return err
	})
	if err != nil {
		return err
	}
	if rev == m.rev {
		s.lastSync.Store(time.Now().UnixNano())
		s.saveSnapshot()
		return nil
	}
	if rev < m.rev {
		// The database went back in time (restored from a backup):
		// only a full read is right.
		return s.fullSync(ctx, conn)
	}
	p := &policy.Patch{}
	full := false
	changedKeys := map[string]bool{}
	for _, k := range keys {
		if k.Deleted {
			delete(m.keys, k.ID)
			full = true
			continue
		}
		m.keys[k.ID] = k
		changedKeys[k.ID] = true
		p.Keys = append(p.Keys, k.DeveloperKey)
	}
	patched := map[[32]byte]bool{}
	for _, t := range tokens {
		if t.Deleted {
			m.dropToken(t.SHA256)
			p.Removed = append(p.Removed, t.SHA256)
			continue
		}
		m.putToken(t)
		if _, ok := m.keys[t.DeveloperKey]; !ok {
			full = true // a token of a key this instance does not have
		}
		patched[t.SHA256] = true
		p.Tokens = append(p.Tokens, t.Token)
	}
	for id := range changedKeys {
		// The key's tokens must point at its new version.
		for h := range m.byKey[id] {
			if !patched[h] {
				patched[h] = true
				p.Tokens = append(p.Tokens, m.tokens[h].Token)
			}
		}
	}
	for _, c := range clients {
		if c.Deleted {
			delete(m.clients, c.ClientID)
		} else {
			m.clients[c.ClientID] = c
		}
		p.ClientsChanged = true
	}
	if p.ClientsChanged || len(p.Keys) > 0 {
		p.Clients = m.clientList()
	}
	for _, r := range revs {
		m.revocations[r.ID] = r
	}
	m.rev = rev
	cur := s.current.Load()
	var store *policy.Store
	if !full && cur.OverlayLen()+len(p.Tokens)+len(p.Removed) <= maxOverlay {
		store, err = cur.Apply("database", p, s.opts.Compile)
		if err != nil {
			s.log.Warn("patching the store failed; compiling it whole", zap.Error(err))
		}
	}
	if store == nil {
		store, err = policy.Compile("database", m.keysFile(false), s.opts.Compile)
		if err != nil {
			// Keep serving the last good store; a later change may fix
			// the content. The model already holds this revision.
			s.syncErrors.Add(1)
			s.log.Error("the database's content does not compile; keeping the last good store", zap.Int64("revision", rev), zap.Error(err))
			return nil
		}
	}
	if len(revs) > 0 && s.opts.OnRevocations != nil {
		s.opts.OnRevocations(revs)
	}
	s.publish(store, rev)
	took := time.Since(started)
	s.lastApply.Store(int64(took))
	s.log.Debug("database change applied", zap.Int64("revision", rev), zap.Int("keys", len(keys)), zap.Int("tokens", len(tokens)),
		zap.Int("clients", len(clients)), zap.Int("oauth_revocations", len(revs)), zap.Duration("took", took))
	s.saveSnapshot()
	return nil
}
