// Package pgtest gives each test its own PostgreSQL database on the real
// server (127.0.0.1:5432, trust authentication, as on the development and
// CI machines) and drops it afterwards.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminDSN is the server's maintenance database; CANVAS_SCOPES_TEST_PG
// overrides it.
func AdminDSN() string {
	if v := os.Getenv("CANVAS_SCOPES_TEST_PG"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database and returns its DSN. Without a
// server the test is skipped, unless CANVAS_SCOPES_REQUIRE_PG=1 (CI),
// where it fails.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminDSN())
	if err != nil {
		if os.Getenv("CANVAS_SCOPES_REQUIRE_PG") == "1" {
			t.Fatalf("PostgreSQL is required (CANVAS_SCOPES_REQUIRE_PG=1) but unreachable: %v", err)
		}
		t.Skipf("no PostgreSQL at %s: %v", AdminDSN(), err)
	}
	defer admin.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	name := "cs_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminDSN())
		if err != nil {
			t.Logf("cannot drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("cannot drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminDSN())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
