package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

type keyRow struct {
	policy.DeveloperKey
	Position int64
	Deleted  bool
}

type tokenRow struct {
	policy.Token
	Position int64
	Deleted  bool
}

type clientRow struct {
	policy.Client
	Position int64
	Deleted  bool
}

// OAuthRevocation is one stored revocation of an OAuth gateway token.
type OAuthRevocation struct {
	ID        [16]byte
	ClientID  string
	ExpiresAt time.Time
}

// scopeSetsValue is a key's ScopeSets for its jsonb column: NULL when
// the key names no set.
func scopeSetsValue(m map[string][]string) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

// keyWrittenColumns are the key's scope lists as written (see Import).
const keyWrittenColumns = `scopes_written, unconfined_scopes_written`

const keyColumns = `id, position, name, scopes, require_scopes, allow_includes, enabled, hosts, allow_masquerade, upstream_token, mode, allow_upstream_credential_minting, accounts, unconfined_scopes, deleted, scope_sets`

func readKeys(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]keyRow, error) {
	rows, err := tx.Query(ctx, `SELECT `+keyColumns+` FROM canvas_scopes_keys `+where+` ORDER BY position, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []keyRow
	for rows.Next() {
		var k keyRow
		var mode string
		if err := rows.Scan(&k.ID, &k.Position, &k.Name, &k.Scopes, &k.RequireScopes, &k.AllowIncludes, &k.Enabled,
			&k.Hosts, &k.AllowMasquerade, &k.UpstreamToken, &mode,
			&k.AllowUpstreamCredentialMinting, &k.Accounts, &k.UnconfinedScopes, &k.Deleted, &k.ScopeSets); err != nil {
			return nil, err
		}
		if mode == "report" {
			k.Mode = policy.ModeReport
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// readTokens streams token rows to each: a full read holds 100,000 of them.
func readTokens(ctx context.Context, tx pgx.Tx, where string, each func(*tokenRow), args ...any) error {
	rows, err := tx.Query(ctx, `SELECT sha256, position, developer_key, label, scopes, expires_at, revoked, deleted
		FROM canvas_scopes_tokens `+where, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	// Key ids repeat on every row: keep one copy of each.
	interned := map[string]string{}
	var (
		t    tokenRow
		hash []byte
		exp  *time.Time
		key  []byte
	)
	for rows.Next() {
		t = tokenRow{}
		exp = nil
		if err := rows.Scan(&hash, &t.Position, &key, &t.Label, &t.Scopes, &exp, &t.Revoked, &t.Deleted); err != nil {
			return err
		}
		if len(hash) != 32 {
			return fmt.Errorf("a token row has a %d-byte sha256", len(hash))
		}
		copy(t.SHA256[:], hash)
		id, ok := interned[string(key)]
		if !ok {
			id = string(key)
			interned[id] = id
		}
		t.DeveloperKey = id
		t.HasScopes = t.Scopes != nil
		if exp != nil {
			t.ExpiresAt = exp.UTC()
		}
		each(&t)
	}
	return rows.Err()
}

func readClients(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]clientRow, error) {
	rows, err := tx.Query(ctx, `SELECT client_id, position, secret_sha256, developer_key, token_ttl_ms, scopes, deleted
		FROM canvas_scopes_clients `+where+` ORDER BY position, client_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []clientRow
	for rows.Next() {
		var c clientRow
		var secret []byte
		var ttl int64
		if err := rows.Scan(&c.ClientID, &c.Position, &secret, &c.DeveloperKey, &ttl, &c.Scopes, &c.Deleted); err != nil {
			return nil, err
		}
		copy(c.SecretSHA256[:], secret)
		c.TokenTTL = time.Duration(ttl) * time.Millisecond
		out = append(out, c)
	}
	return out, rows.Err()
}

func readRevocations(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]OAuthRevocation, error) {
	rows, err := tx.Query(ctx, `SELECT id, client_id, expires_at FROM canvas_scopes_oauth_revocations `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OAuthRevocation
	for rows.Next() {
		var r OAuthRevocation
		var id []byte
		if err := rows.Scan(&id, &r.ClientID, &r.ExpiresAt); err != nil {
			return nil, err
		}
		copy(r.ID[:], id)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Export reads the stored keys, tokens and clients as a keys file, in one
// consistent snapshot.
func Export(ctx context.Context, db DB) (*policy.KeysFile, int64, error) {
	kf := &policy.KeysFile{}
	var rev int64
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT rev FROM canvas_scopes_revision`).Scan(&rev); err != nil {
			return err
		}
		keys, err := readKeys(ctx, tx, `WHERE NOT deleted`)
		if err != nil {
			return err
		}
		for _, k := range keys {
			kf.DeveloperKeys = append(kf.DeveloperKeys, k.DeveloperKey)
		}
		err = readTokens(ctx, tx, `WHERE NOT deleted ORDER BY position, sha256`, func(t *tokenRow) {
			kf.Tokens = append(kf.Tokens, t.Token)
		})
		if err != nil {
			return err
		}
		clients, err := readClients(ctx, tx, `WHERE NOT deleted`)
		for _, c := range clients {
			kf.Clients = append(kf.Clients, c.Client)
		}
		if err != nil {
			return err
		}
		kf.Written, err = readWritten(ctx, tx, kf)
		return err
	})
	return kf, rev, err
}

// readWritten reads the scope sets and the lists kept as written, placed
// by the index of their entry in kf (nil when there are none).
func readWritten(ctx context.Context, tx pgx.Tx, kf *policy.KeysFile) (*policy.WrittenScopes, error) {
	w := &policy.WrittenScopes{Keys: map[int][]string{}, KeysUnconfined: map[int][]string{}, Tokens: map[int][]string{}, Clients: map[int][]string{}}
	rows, err := tx.Query(ctx, `SELECT name, scopes FROM canvas_scopes_scope_sets ORDER BY position, name`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var set policy.NamedScopeSet
		if err := rows.Scan(&set.Name, &set.Scopes); err != nil {
			rows.Close()
			return nil, err
		}
		w.Sets = append(w.Sets, set)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// place reads "identity, lists..." rows and files each list under the
	// index its identity has in kf.
	place := func(query string, index map[string]int, into ...map[int][]string) error {
		rows, err := tx.Query(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id []byte
			lists := make([][]string, len(into))
			dest := []any{&id}
			for i := range lists {
				dest = append(dest, &lists[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			i, ok := index[string(id)]
			if !ok {
				continue
			}
			for j, l := range lists {
				if l != nil {
					into[j][i] = l
				}
			}
		}
		return rows.Err()
	}
	keys := make(map[string]int, len(kf.DeveloperKeys))
	for i, k := range kf.DeveloperKeys {
		keys[k.ID] = i
	}
	if err := place(`SELECT id::bytea, scopes_written, unconfined_scopes_written FROM canvas_scopes_keys
		WHERE NOT deleted AND (scopes_written IS NOT NULL OR unconfined_scopes_written IS NOT NULL)`, keys, w.Keys, w.KeysUnconfined); err != nil {
		return nil, err
	}
	// Tokens are many and rarely name a set: index them only if one does.
	var tokensNameSets bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM canvas_scopes_tokens WHERE NOT deleted AND scopes_written IS NOT NULL)`).Scan(&tokensNameSets); err != nil {
		return nil, err
	}
	if tokensNameSets {
		tokens := make(map[string]int, len(kf.Tokens))
		for i := range kf.Tokens {
			tokens[string(kf.Tokens[i].SHA256[:])] = i
		}
		if err := place(`SELECT sha256, scopes_written FROM canvas_scopes_tokens WHERE NOT deleted AND scopes_written IS NOT NULL`, tokens, w.Tokens); err != nil {
			return nil, err
		}
	}
	clients := make(map[string]int, len(kf.Clients))
	for i, c := range kf.Clients {
		clients[c.ClientID] = i
	}
	if err := place(`SELECT client_id::bytea, scopes_written FROM canvas_scopes_clients WHERE NOT deleted AND scopes_written IS NOT NULL`, clients, w.Clients); err != nil {
		return nil, err
	}
	if len(w.Sets) == 0 && len(w.Keys) == 0 && len(w.KeysUnconfined) == 0 && len(w.Tokens) == 0 && len(w.Clients) == 0 {
		return nil, nil
	}
	return w, nil
}

// Import makes the stored keys, tokens and clients equal to kf in one
// transaction: rows that differ are written, rows missing from kf are
// deleted, identical rows are left alone. Importing the same file twice
// changes nothing the second time (the revision stays). OAuth revocations
// are not part of a keys file and are kept.
func Import(ctx context.Context, db DB, kf *policy.KeysFile) (rev int64, changed bool, err error) {
	var before int64
	written := kf.Written
	if written == nil {
		written = &policy.WrittenScopes{}
	}
	rev, err = write(ctx, db, func(tx pgx.Tx, rev int64) (bool, error) {
		before = rev - 1
		n := int64(0)
		if _, err := tx.Exec(ctx, `
			CREATE TEMP TABLE cs_import_keys ON COMMIT DROP AS
				SELECT `+keyColumns+`, `+keyWrittenColumns+` FROM canvas_scopes_keys WITH NO DATA;
			CREATE TEMP TABLE cs_import_tokens ON COMMIT DROP AS
				SELECT sha256, token_id, position, developer_key, label, scopes, expires_at, revoked, scopes_written FROM canvas_scopes_tokens WITH NO DATA;
			CREATE TEMP TABLE cs_import_clients ON COMMIT DROP AS
				SELECT client_id, position, secret_sha256, developer_key, token_ttl_ms, scopes, scopes_written FROM canvas_scopes_clients WITH NO DATA;
			CREATE TEMP TABLE cs_import_scope_sets ON COMMIT DROP AS
				SELECT name, position, scopes FROM canvas_scopes_scope_sets WITH NO DATA`); err != nil {
			return false, err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"cs_import_keys"},
			[]string{"id", "position", "name", "scopes", "require_scopes", "allow_includes", "enabled", "hosts", "allow_masquerade", "upstream_token", "mode",
				"allow_upstream_credential_minting", "accounts", "unconfined_scopes", "deleted", "scope_sets", "scopes_written", "unconfined_scopes_written"},
			pgx.CopyFromSlice(len(kf.DeveloperKeys), func(i int) ([]any, error) {
				k := &kf.DeveloperKeys[i]
				return []any{k.ID, int64(i), k.Name, k.Scopes, k.RequireScopes, k.AllowIncludes, k.Enabled, k.Hosts, k.AllowMasquerade, k.UpstreamToken, k.Mode.String(),
					k.AllowUpstreamCredentialMinting, k.Accounts, k.UnconfinedScopes, false, scopeSetsValue(k.ScopeSets), written.Keys[i], written.KeysUnconfined[i]}, nil
			}))
		if err != nil {
			return false, err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"cs_import_tokens"},
			[]string{"sha256", "token_id", "position", "developer_key", "label", "scopes", "expires_at", "revoked", "scopes_written"},
			pgx.CopyFromSlice(len(kf.Tokens), func(i int) ([]any, error) {
				t := &kf.Tokens[i]
				var scopes []string
				if t.HasScopes {
					scopes = t.Scopes
					if scopes == nil {
						scopes = []string{}
					}
				}
				return []any{t.SHA256[:], policy.TokenID(t.SHA256), int64(i), t.DeveloperKey, t.Label, scopes, nullTime(t.ExpiresAt), t.Revoked, written.Tokens[i]}, nil
			}))
		if err != nil {
			return false, err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"cs_import_clients"},
			[]string{"client_id", "position", "secret_sha256", "developer_key", "token_ttl_ms", "scopes", "scopes_written"},
			pgx.CopyFromSlice(len(kf.Clients), func(i int) ([]any, error) {
				c := &kf.Clients[i]
				return []any{c.ClientID, int64(i), c.SecretSHA256[:], c.DeveloperKey, c.TokenTTL.Milliseconds(), c.Scopes, written.Clients[i]}, nil
			}))
		if err != nil {
			return false, err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"cs_import_scope_sets"}, []string{"name", "position", "scopes"},
			pgx.CopyFromSlice(len(written.Sets), func(i int) ([]any, error) {
				set := &written.Sets[i]
				scopes := set.Scopes
				if scopes == nil {
					scopes = []string{}
				}
				return []any{set.Name, int64(i), scopes}, nil
			}))
		if err != nil {
			return false, err
		}
		// The sets carry no revision: nothing syncs them (the lists the
		// gate enforces hold their expansion), they are kept for export.
		for _, stmt := range []string{
			`DELETE FROM canvas_scopes_scope_sets s WHERE NOT EXISTS (SELECT 1 FROM cs_import_scope_sets i WHERE i.name = s.name)`,
			`INSERT INTO canvas_scopes_scope_sets AS s (name, position, scopes) SELECT name, position, scopes FROM cs_import_scope_sets
			ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, scopes = EXCLUDED.scopes
			WHERE (s.position, s.scopes) IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.scopes)`,
		} {
			tag, err := tx.Exec(ctx, stmt)
			if err != nil {
				return false, err
			}
			n += tag.RowsAffected()
		}
		for _, stmt := range []string{
			`INSERT INTO canvas_scopes_keys AS t (` + keyColumns + `, ` + keyWrittenColumns + `, rev)
			SELECT ` + keyColumns + `, ` + keyWrittenColumns + `, $1 FROM cs_import_keys
			ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, name = EXCLUDED.name, scopes = EXCLUDED.scopes,
				require_scopes = EXCLUDED.require_scopes, allow_includes = EXCLUDED.allow_includes, enabled = EXCLUDED.enabled,
				hosts = EXCLUDED.hosts, allow_masquerade = EXCLUDED.allow_masquerade, upstream_token = EXCLUDED.upstream_token,
				mode = EXCLUDED.mode, allow_upstream_credential_minting = EXCLUDED.allow_upstream_credential_minting,
				accounts = EXCLUDED.accounts, unconfined_scopes = EXCLUDED.unconfined_scopes,
				scopes_written = EXCLUDED.scopes_written, unconfined_scopes_written = EXCLUDED.unconfined_scopes_written, scope_sets = EXCLUDED.scope_sets,
				deleted = false, rev = EXCLUDED.rev
			WHERE (t.position, t.name, t.scopes, t.require_scopes, t.allow_includes, t.enabled, t.hosts, t.allow_masquerade, t.upstream_token, t.mode,
				t.allow_upstream_credential_minting, t.accounts, t.unconfined_scopes, t.scopes_written, t.unconfined_scopes_written, t.scope_sets, t.deleted)
				IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.name, EXCLUDED.scopes, EXCLUDED.require_scopes, EXCLUDED.allow_includes, EXCLUDED.enabled,
				EXCLUDED.hosts, EXCLUDED.allow_masquerade, EXCLUDED.upstream_token, EXCLUDED.mode,
				EXCLUDED.allow_upstream_credential_minting, EXCLUDED.accounts, EXCLUDED.unconfined_scopes,
				EXCLUDED.scopes_written, EXCLUDED.unconfined_scopes_written, EXCLUDED.scope_sets, false)`,
			`UPDATE canvas_scopes_keys t SET deleted = true, rev = $1
			WHERE NOT t.deleted AND NOT EXISTS (SELECT 1 FROM cs_import_keys i WHERE i.id = t.id)`,
			`INSERT INTO canvas_scopes_tokens AS t (sha256, token_id, position, developer_key, label, scopes, expires_at, revoked, scopes_written, rev)
			SELECT sha256, token_id, position, developer_key, label, scopes, expires_at, revoked, scopes_written, $1 FROM cs_import_tokens
			ON CONFLICT (sha256) DO UPDATE SET position = EXCLUDED.position, developer_key = EXCLUDED.developer_key, label = EXCLUDED.label,
				scopes = EXCLUDED.scopes, expires_at = EXCLUDED.expires_at, revoked = EXCLUDED.revoked, scopes_written = EXCLUDED.scopes_written,
				deleted = false, rev = EXCLUDED.rev
			WHERE (t.position, t.developer_key, t.label, t.scopes, t.expires_at, t.revoked, t.scopes_written, t.deleted)
				IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.developer_key, EXCLUDED.label, EXCLUDED.scopes, EXCLUDED.expires_at, EXCLUDED.revoked,
				EXCLUDED.scopes_written, false)`,
			`UPDATE canvas_scopes_tokens t SET deleted = true, rev = $1
			WHERE NOT t.deleted AND NOT EXISTS (SELECT 1 FROM cs_import_tokens i WHERE i.sha256 = t.sha256)`,
			`INSERT INTO canvas_scopes_clients AS t (client_id, position, secret_sha256, developer_key, token_ttl_ms, scopes, scopes_written, rev)
			SELECT client_id, position, secret_sha256, developer_key, token_ttl_ms, scopes, scopes_written, $1 FROM cs_import_clients
			ON CONFLICT (client_id) DO UPDATE SET position = EXCLUDED.position, secret_sha256 = EXCLUDED.secret_sha256,
				developer_key = EXCLUDED.developer_key, token_ttl_ms = EXCLUDED.token_ttl_ms, scopes = EXCLUDED.scopes,
				scopes_written = EXCLUDED.scopes_written, deleted = false, rev = EXCLUDED.rev
			WHERE (t.position, t.secret_sha256, t.developer_key, t.token_ttl_ms, t.scopes, t.scopes_written, t.deleted)
				IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.secret_sha256, EXCLUDED.developer_key, EXCLUDED.token_ttl_ms, EXCLUDED.scopes,
				EXCLUDED.scopes_written, false)`,
			`UPDATE canvas_scopes_clients t SET deleted = true, rev = $1
			WHERE NOT t.deleted AND NOT EXISTS (SELECT 1 FROM cs_import_clients i WHERE i.client_id = t.client_id)`,
		} {
			tag, err := tx.Exec(ctx, stmt, rev)
			if err != nil {
				return false, err
			}
			n += tag.RowsAffected()
		}
		return n > 0, nil
	})
	return rev, err == nil && rev != before, err
}
