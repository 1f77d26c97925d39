// Package fleet keeps the gate's developer keys, tokens, OAuth clients and
// OAuth revocations in PostgreSQL, shared by every instance of a fleet. It
// is Caddy-free: the caddymodule package wires it to the handler and the
// CLI.
//
// Every change runs in one transaction that takes the single revision row
// FOR UPDATE, stamps each row it touches with the next revision, bumps the
// row and calls pg_notify with the revision only. Writers are therefore
// serialised on that row and revisions are assigned in commit order, so a
// reader that asks for "rev > mine" in a snapshot that also reads the
// revision row never skips a late commit. Deleted rows are kept as
// tombstones (deleted = true) so that readers see deletions the same way.
package fleet

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Channel is the LISTEN/NOTIFY channel; its payload is a revision number.
const Channel = "canvas_scopes"

// migrations are applied in order, each once, in its own transaction. Never
// edit one that has shipped; append a new one.
var migrations = []string{
	// 1: the schema.
	`
CREATE TABLE canvas_scopes_revision (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	rev       bigint  NOT NULL
);
INSERT INTO canvas_scopes_revision (rev) VALUES (0);

CREATE TABLE canvas_scopes_keys (
	id               text    PRIMARY KEY,
	position         bigint  NOT NULL,
	name             text    NOT NULL DEFAULT '',
	scopes           text[],
	require_scopes   boolean NOT NULL DEFAULT true,
	allow_includes   boolean NOT NULL DEFAULT false,
	enabled          boolean NOT NULL DEFAULT true,
	hosts            text[],
	allow_masquerade boolean NOT NULL DEFAULT false,
	upstream_token   text    NOT NULL DEFAULT '', -- as written: a {env.*} or {file.*} placeholder
	mode             text    NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'report')),
	rev              bigint  NOT NULL,
	deleted          boolean NOT NULL DEFAULT false
);
CREATE INDEX canvas_scopes_keys_rev ON canvas_scopes_keys (rev);

-- Tokens are stored by the SHA-256 of their text only.
CREATE TABLE canvas_scopes_tokens (
	sha256        bytea       PRIMARY KEY CHECK (length(sha256) = 32),
	token_id      text        NOT NULL, -- first 12 hex digits of sha256
	position      bigint      NOT NULL,
	developer_key text        NOT NULL,
	label         text        NOT NULL DEFAULT '',
	scopes        text[],                -- NULL: the key's scopes
	expires_at    timestamptz,           -- NULL: never
	revoked       boolean     NOT NULL DEFAULT false,
	created_at    timestamptz NOT NULL DEFAULT now(),
	rev           bigint      NOT NULL,
	deleted       boolean     NOT NULL DEFAULT false
);
CREATE INDEX canvas_scopes_tokens_rev ON canvas_scopes_tokens (rev);
CREATE INDEX canvas_scopes_tokens_token_id ON canvas_scopes_tokens (token_id);
CREATE INDEX canvas_scopes_tokens_position ON canvas_scopes_tokens (position);

CREATE TABLE canvas_scopes_clients (
	client_id     text    PRIMARY KEY,
	position      bigint  NOT NULL,
	secret_sha256 bytea   NOT NULL CHECK (length(secret_sha256) = 32),
	developer_key text    NOT NULL,
	token_ttl_ms  bigint  NOT NULL,
	scopes        text[],
	rev           bigint  NOT NULL,
	deleted       boolean NOT NULL DEFAULT false
);
CREATE INDEX canvas_scopes_clients_rev ON canvas_scopes_clients (rev);

-- Revoked OAuth gateway tokens, kept until the token would have expired.
CREATE TABLE canvas_scopes_oauth_revocations (
	id         bytea       PRIMARY KEY CHECK (length(id) = 16),
	client_id  text        NOT NULL,
	expires_at timestamptz NOT NULL,
	rev        bigint      NOT NULL
);
CREATE INDEX canvas_scopes_oauth_revocations_rev ON canvas_scopes_oauth_revocations (rev);
CREATE INDEX canvas_scopes_oauth_revocations_expires ON canvas_scopes_oauth_revocations (expires_at);
`,
	// 2: the developer key fields for credential minting and confinement
	// to sub-accounts.
	`
ALTER TABLE canvas_scopes_keys
	ADD COLUMN allow_upstream_credential_minting boolean NOT NULL DEFAULT false,
	ADD COLUMN accounts          text[],
	ADD COLUMN unconfined_scopes text[];
`,
	// 3: scope use per developer key and catalogue scope, added to by every
	// instance in batches (never a path, never a token). Not part of the
	// revisioned state: nothing syncs it, the admin API reads it.
	`
CREATE TABLE canvas_scopes_usage (
	developer_key text        NOT NULL,
	scope         text        NOT NULL,
	allowed       bigint      NOT NULL DEFAULT 0 CHECK (allowed >= 0),
	denied        bigint      NOT NULL DEFAULT 0 CHECK (denied >= 0),
	first_seen    timestamptz NOT NULL,
	last_seen     timestamptz NOT NULL,
	PRIMARY KEY (developer_key, scope)
);
`,
	// 4: named scope sets, kept as written so that db export gives the
	// keys file back with its sets and "@name" references. The scopes
	// columns keep holding the expansion (what the gate enforces); the
	// *_written columns hold a list as written when it names a set.
	`
CREATE TABLE canvas_scopes_scope_sets (
	name     text   PRIMARY KEY,
	position bigint NOT NULL,
	scopes   text[] NOT NULL -- as written, "@name" references included
);
ALTER TABLE canvas_scopes_keys
	ADD COLUMN scopes_written            text[],
	ADD COLUMN unconfined_scopes_written text[],
	ADD COLUMN scope_sets                jsonb; -- the sets the key's scopes named, expanded (explain, the admin API)
ALTER TABLE canvas_scopes_tokens ADD COLUMN scopes_written text[];
ALTER TABLE canvas_scopes_clients ADD COLUMN scopes_written text[];
`,
}

// SchemaVersion is the version Migrate brings a database to.
var SchemaVersion = len(migrations)

// migrationLock is the advisory lock id that serialises concurrent
// migrations (several instances starting at once).
const migrationLock = 0x63616e7661735f73 // "canvas_s"

// Migrate creates or upgrades the schema and reports the versions before
// and after. Running it on an up-to-date database changes nothing.
func Migrate(ctx context.Context, conn *pgx.Conn) (from, to int, err error) {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return 0, 0, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS canvas_scopes_schema (
		version    integer     PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, 0, err
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM canvas_scopes_schema`).Scan(&from); err != nil {
		return 0, 0, err
	}
	if from > len(migrations) {
		return from, from, fmt.Errorf("the database schema is version %d, newer than this binary knows (%d); upgrade the binary", from, len(migrations))
	}
	for v := from + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO canvas_scopes_schema (version) VALUES ($1)`, v)
			return err
		})
		if err != nil {
			return from, v - 1, fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return from, len(migrations), nil
}
