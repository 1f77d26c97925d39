package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// DB is what the writers need: a *pgx.Conn or a *pgxpool.Pool.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// ErrUnknownKey is returned for a developer key id that is not stored.
var ErrUnknownKey = errors.New("no such developer key")

// ErrUnknownToken is returned by RevokeToken for an id that matches no token.
var ErrUnknownToken = errors.New("no token has this id")

// ParseDSN checks a DSN without ever putting it in an error: pgx's own
// messages quote the connection string.
func ParseDSN(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("the database DSN cannot be parsed (expected postgres://user@host:port/db or key=value pairs)")
	}
	return cfg, nil
}

// Connect opens one connection, failing within timeout.
func Connect(ctx context.Context, dsn string, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if timeout > 0 && (cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > timeout) {
		cfg.ConnectTimeout = timeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database unreachable: %s", safeErr(err))
	}
	return conn, nil
}

// safeErr describes err without the connection string: pgx's connect
// errors name user and database, which is fine, but never the password;
// everything else is passed through.
func safeErr(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	// One line: connect errors list every address tried on its own line.
	return strings.Join(strings.Fields(err.Error()), " ")
}

// write runs fn in a transaction holding the revision row. fn gets the
// revision its rows must carry and reports whether it changed anything;
// only then is the revision bumped and announced. It returns the
// revision the database is at afterwards.
func write(ctx context.Context, db DB, fn func(tx pgx.Tx, rev int64) (bool, error)) (int64, error) {
	var rev int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var cur int64
		if err := tx.QueryRow(ctx, `SELECT rev FROM canvas_scopes_revision FOR UPDATE`).Scan(&cur); err != nil {
			return err
		}
		rev = cur
		changed, err := fn(tx, cur+1)
		if err != nil || !changed {
			return err
		}
		rev = cur + 1
		if _, err := tx.Exec(ctx, `UPDATE canvas_scopes_revision SET rev = $1`, rev); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, strconv.FormatInt(rev, 10))
		return err
	})
	return rev, err
}

// Revision is the database's current revision.
func Revision(ctx context.Context, db DB) (int64, error) {
	var rev int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT rev FROM canvas_scopes_revision`).Scan(&rev)
	})
	return rev, err
}

// TokenOptions describe a token to create.
type TokenOptions struct {
	Key       string
	Label     string
	ExpiresAt time.Time // zero: never
	Scopes    []string  // nil: the key's scopes
	// AllowUnknownScopes accepts well-formed scopes missing from the
	// Canvas catalogue, as the keys file option does.
	AllowUnknownScopes bool
}

// NewToken generates a 256-bit random token (64 hex digits).
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// CheckTokenScopes validates scopes for a token of key: the grammar, the
// catalogue, and (for a key that requires scopes) that the key holds them,
// since Canvas revokes a token holding a scope its key lacks.
func CheckTokenScopes(key *policy.DeveloperKey, scopes []string, allowUnknown bool) error {
	seen := map[string]bool{}
	for _, s := range scopes {
		if seen[s] {
			return fmt.Errorf("duplicate scope %q", s)
		}
		seen[s] = true
		if _, err := matcher.ParseScope(s); err != nil {
			return err
		}
		if !allowUnknown {
			if ok, _ := matcher.CheckCatalogue(s); !ok {
				return fmt.Errorf("scope %q is not in the Canvas scope catalogue", s)
			}
		}
		if key.RequireScopes && !slices.Contains(key.Scopes, s) {
			return fmt.Errorf("scope %q is not on developer key %q", s, key.ID)
		}
	}
	return nil
}

// CreateToken stores a new token's SHA-256 under o.Key and returns the
// token text (shown once, never stored) and its id.
func CreateToken(ctx context.Context, db DB, o TokenOptions) (token, id string, err error) {
	token, err = NewToken()
	if err != nil {
		return "", "", err
	}
	h := policy.HashToken(token)
	id = policy.TokenID(h)
	_, err = write(ctx, db, func(tx pgx.Tx, rev int64) (bool, error) {
		keys, err := readKeys(ctx, tx, `WHERE id = $1 AND NOT deleted`, o.Key)
		if err != nil {
			return false, err
		}
		if len(keys) == 0 {
			return false, fmt.Errorf("%w %q", ErrUnknownKey, o.Key)
		}
		if err := CheckTokenScopes(&keys[0].DeveloperKey, o.Scopes, o.AllowUnknownScopes); err != nil {
			return false, err
		}
		_, err = tx.Exec(ctx, `INSERT INTO canvas_scopes_tokens
			(sha256, token_id, position, developer_key, label, scopes, expires_at, rev)
			VALUES ($1, $2, (SELECT coalesce(max(position), -1) + 1 FROM canvas_scopes_tokens), $3, $4, $5, $6, $7)`,
			h[:], id, o.Key, o.Label, o.Scopes, nullTime(o.ExpiresAt), rev)
		return err == nil, err
	})
	if err != nil {
		return "", "", err
	}
	return token, id, nil
}

// RevokeToken marks the token with this 12-hex id revoked. An id shared
// by two tokens (a 48-bit prefix collision) is refused.
func RevokeToken(ctx context.Context, db DB, tokenID string) error {
	_, err := write(ctx, db, func(tx pgx.Tx, rev int64) (bool, error) {
		tag, err := tx.Exec(ctx, `UPDATE canvas_scopes_tokens SET revoked = true, rev = $2
			WHERE token_id = $1 AND NOT deleted AND NOT revoked`, tokenID, rev)
		if err != nil {
			return false, err
		}
		switch n := tag.RowsAffected(); {
		case n == 1:
			return true, nil
		case n > 1:
			return false, fmt.Errorf("%d tokens share the id %s; revoke them through db export and db import", n, tokenID)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM canvas_scopes_tokens WHERE token_id = $1 AND NOT deleted)`, tokenID).Scan(&exists); err != nil {
			return false, err
		}
		if !exists {
			return false, fmt.Errorf("%w %s", ErrUnknownToken, tokenID)
		}
		return false, nil // already revoked
	})
	return err
}

// TokenInfo is what `token list` shows: never a hash or a token.
type TokenInfo struct {
	ID        string
	Key       string
	Label     string
	ExpiresAt time.Time
	Revoked   bool
	CreatedAt time.Time
}

// ListTokens lists the stored tokens, of one key when key is not empty.
func ListTokens(ctx context.Context, db DB, key string) ([]TokenInfo, error) {
	var out []TokenInfo
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT token_id, developer_key, label, expires_at, revoked, created_at
			FROM canvas_scopes_tokens WHERE NOT deleted AND ($1 = '' OR developer_key = $1) ORDER BY position`, key)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t TokenInfo
			var exp *time.Time
			if err := rows.Scan(&t.ID, &t.Key, &t.Label, &exp, &t.Revoked, &t.CreatedAt); err != nil {
				return err
			}
			if exp != nil {
				t.ExpiresAt = *exp
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	return out, err
}

// AddOAuthRevocation stores the revocation of an OAuth gateway token until
// it would have expired, and purges revocations whose tokens have expired.
func AddOAuthRevocation(ctx context.Context, db DB, id [16]byte, clientID string, expiresAt time.Time) error {
	_, err := write(ctx, db, func(tx pgx.Tx, rev int64) (bool, error) {
		if _, err := tx.Exec(ctx, `DELETE FROM canvas_scopes_oauth_revocations WHERE expires_at < now() - interval '1 minute'`); err != nil {
			return false, err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO canvas_scopes_oauth_revocations (id, client_id, expires_at, rev)
			VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`, id[:], clientID, expiresAt, rev)
		return err == nil && tag.RowsAffected() == 1, err
	})
	return err
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
