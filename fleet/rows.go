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

const keyColumns = `id, position, name, scopes, require_scopes, allow_includes, enabled, hosts, allow_masquerade, upstream_token, mode, allow_upstream_credential_minting, accounts, unconfined_scopes, deleted`

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
			&k.AllowUpstreamCredentialMinting, &k.Accounts, &k.UnconfinedScopes, &k.Deleted); err != nil {
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
		return err
	})
	return kf, rev, err
}

// Import makes the stored keys, tokens and clients equal to kf in one
// transaction: rows that differ are written, rows missing from kf are
// deleted, identical rows are left alone. Importing the same file twice
// changes nothing the second time (the revision stays). OAuth revocations
// are not part of a keys file and are kept.
func Import(ctx context.Context, db DB, kf *policy.KeysFile) (rev int64, changed bool, err error) {
	var before int64
	rev, err = write(ctx, db, func(tx pgx.Tx, rev int64) (bool, error) {
		before = rev - 1
		n := int64(0)
		if _, err := tx.Exec(ctx, `
			CREATE TEMP TABLE cs_import_keys ON COMMIT DROP AS SELECT `+keyColumns+` FROM canvas_scopes_keys WITH NO DATA;
			CREATE TEMP TABLE cs_import_tokens ON COMMIT DROP AS
				SELECT sha256, token_id, position, developer_key, label, scopes, expires_at, revoked FROM canvas_scopes_tokens WITH NO DATA;
			CREATE TEMP TABLE cs_import_clients ON COMMIT DROP AS
				SELECT client_id, position, secret_sha256, developer_key, token_ttl_ms, scopes FROM canvas_scopes_clients WITH NO DATA`); err != nil {
			return false, err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"cs_import_keys"},
			[]string{"id", "position", "name", "scopes", "require_scopes", "allow_includes", "enabled", "hosts", "allow_masquerade", "upstream_token", "mode",
				"allow_upstream_credential_minting", "accounts", "unconfined_scopes", "deleted"},
			pgx.CopyFromSlice(len(kf.DeveloperKeys), func(i int) ([]any, error) {
				k := &kf.DeveloperKeys[i]
				return []any{k.ID, int64(i), k.Name, k.Scopes, k.RequireScopes, k.AllowIncludes, k.Enabled, k.Hosts, k.AllowMasquerade, k.UpstreamToken, k.Mode.String(),
					k.AllowUpstreamCredentialMinting, k.Accounts, k.UnconfinedScopes, false}, nil
			}))
		if err != nil {
			return false, err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"cs_import_tokens"},
			[]string{"sha256", "token_id", "position", "developer_key", "label", "scopes", "expires_at", "revoked"},
			pgx.CopyFromSlice(len(kf.Tokens), func(i int) ([]any, error) {
				t := &kf.Tokens[i]
				var scopes []string
				if t.HasScopes {
					scopes = t.Scopes
					if scopes == nil {
						scopes = []string{}
					}
				}
				return []any{t.SHA256[:], policy.TokenID(t.SHA256), int64(i), t.DeveloperKey, t.Label, scopes, nullTime(t.ExpiresAt), t.Revoked}, nil
			}))
		if err != nil {
			return false, err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"cs_import_clients"},
			[]string{"client_id", "position", "secret_sha256", "developer_key", "token_ttl_ms", "scopes"},
			pgx.CopyFromSlice(len(kf.Clients), func(i int) ([]any, error) {
				c := &kf.Clients[i]
				return []any{c.ClientID, int64(i), c.SecretSHA256[:], c.DeveloperKey, c.TokenTTL.Milliseconds(), c.Scopes}, nil
			}))
		if err != nil {
			return false, err
		}
		for _, stmt := range []string{
			`INSERT INTO canvas_scopes_keys AS t (` + keyColumns + `, rev)
			SELECT ` + keyColumns + `, $1 FROM cs_import_keys
			ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, name = EXCLUDED.name, scopes = EXCLUDED.scopes,
				require_scopes = EXCLUDED.require_scopes, allow_includes = EXCLUDED.allow_includes, enabled = EXCLUDED.enabled,
				hosts = EXCLUDED.hosts, allow_masquerade = EXCLUDED.allow_masquerade, upstream_token = EXCLUDED.upstream_token,
				mode = EXCLUDED.mode, allow_upstream_credential_minting = EXCLUDED.allow_upstream_credential_minting,
				accounts = EXCLUDED.accounts, unconfined_scopes = EXCLUDED.unconfined_scopes, deleted = false, rev = EXCLUDED.rev
			WHERE (t.position, t.name, t.scopes, t.require_scopes, t.allow_includes, t.enabled, t.hosts, t.allow_masquerade, t.upstream_token, t.mode,
				t.allow_upstream_credential_minting, t.accounts, t.unconfined_scopes, t.deleted)
				IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.name, EXCLUDED.scopes, EXCLUDED.require_scopes, EXCLUDED.allow_includes, EXCLUDED.enabled,
				EXCLUDED.hosts, EXCLUDED.allow_masquerade, EXCLUDED.upstream_token, EXCLUDED.mode,
				EXCLUDED.allow_upstream_credential_minting, EXCLUDED.accounts, EXCLUDED.unconfined_scopes, false)`,
			`UPDATE canvas_scopes_keys t SET deleted = true, rev = $1
			WHERE NOT t.deleted AND NOT EXISTS (SELECT 1 FROM cs_import_keys i WHERE i.id = t.id)`,
			`INSERT INTO canvas_scopes_tokens AS t (sha256, token_id, position, developer_key, label, scopes, expires_at, revoked, rev)
			SELECT sha256, token_id, position, developer_key, label, scopes, expires_at, revoked, $1 FROM cs_import_tokens
			ON CONFLICT (sha256) DO UPDATE SET position = EXCLUDED.position, developer_key = EXCLUDED.developer_key, label = EXCLUDED.label,
				scopes = EXCLUDED.scopes, expires_at = EXCLUDED.expires_at, revoked = EXCLUDED.revoked, deleted = false, rev = EXCLUDED.rev
			WHERE (t.position, t.developer_key, t.label, t.scopes, t.expires_at, t.revoked, t.deleted)
				IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.developer_key, EXCLUDED.label, EXCLUDED.scopes, EXCLUDED.expires_at, EXCLUDED.revoked, false)`,
			`UPDATE canvas_scopes_tokens t SET deleted = true, rev = $1
			WHERE NOT t.deleted AND NOT EXISTS (SELECT 1 FROM cs_import_tokens i WHERE i.sha256 = t.sha256)`,
			`INSERT INTO canvas_scopes_clients AS t (client_id, position, secret_sha256, developer_key, token_ttl_ms, scopes, rev)
			SELECT client_id, position, secret_sha256, developer_key, token_ttl_ms, scopes, $1 FROM cs_import_clients
			ON CONFLICT (client_id) DO UPDATE SET position = EXCLUDED.position, secret_sha256 = EXCLUDED.secret_sha256,
				developer_key = EXCLUDED.developer_key, token_ttl_ms = EXCLUDED.token_ttl_ms, scopes = EXCLUDED.scopes, deleted = false, rev = EXCLUDED.rev
			WHERE (t.position, t.secret_sha256, t.developer_key, t.token_ttl_ms, t.scopes, t.deleted)
				IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.secret_sha256, EXCLUDED.developer_key, EXCLUDED.token_ttl_ms, EXCLUDED.scopes, false)`,
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
