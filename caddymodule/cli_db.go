package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/fleet"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// databaseEnv may hold the DSN instead of --database, which keeps the
// password out of the process list and shell history.
const databaseEnv = "CANVAS_SCOPES_DATABASE"

// cliFail prints one line and exits non-zero.
func cliFail(stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, "canvas-scopes: "+format+"\n", args...)
	return exitWith(exitDenied)
}

// storeFlags are --database and --keys-file, for the commands that work
// with either.
type storeFlags struct {
	database string
	keysFile string
	fileOK   bool
}

func (f *storeFlags) add(cmd *cobra.Command, fileOK bool) {
	f.fileOK = fileOK
	cmd.Flags().StringVar(&f.database, "database", "", "PostgreSQL DSN of the shared store (default: $"+databaseEnv+")")
	if fileOK {
		cmd.Flags().StringVar(&f.keysFile, "keys-file", "", "work on this keys file instead of a database (rewritten atomically)")
	}
	cmd.SilenceUsage = true
}

// open connects to the database, or returns nil for --keys-file.
func (f *storeFlags) open(ctx context.Context) (*pgx.Conn, error) {
	if f.keysFile != "" {
		if f.database != "" {
			return nil, errors.New("give --database or --keys-file, not both")
		}
		return nil, nil
	}
	dsn := f.database
	if dsn == "" {
		dsn = os.Getenv(databaseEnv)
	}
	if dsn == "" {
		if f.fileOK {
			return nil, errors.New("no store: give --database DSN (or set " + databaseEnv + ") or --keys-file FILE")
		}
		return nil, errors.New("no database: give --database DSN or set " + databaseEnv)
	}
	conn, err := fleet.Connect(ctx, dsn, 5*time.Second)
	if err != nil {
		return nil, err
	}
	var migrated bool
	err = conn.QueryRow(ctx, `SELECT to_regclass('canvas_scopes_revision') IS NOT NULL`).Scan(&migrated)
	if err == nil && !migrated {
		err = errors.New("the database has no canvas_scopes schema; run `caddy canvas-scopes db migrate` first")
	}
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

func dbCommand() *cobra.Command {
	db := &cobra.Command{
		Use:   "db",
		Short: "Manage the shared PostgreSQL store: migrate, import, export",
	}
	var mf storeFlags
	migrate := &cobra.Command{
		Use:   "migrate --database DSN",
		Short: "Create or upgrade the schema (also done by every instance at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := context.Background()
			dsn := mf.database
			if dsn == "" {
				dsn = os.Getenv(databaseEnv)
			}
			if dsn == "" {
				return cliFail(cmd.ErrOrStderr(), "no database: give --database DSN or set %s", databaseEnv)
			}
			conn, err := fleet.Connect(ctx, dsn, 5*time.Second)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "%v", err)
			}
			defer conn.Close(ctx)
			from, to, err := fleet.Migrate(ctx, conn)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "migrate: %v", err)
			}
			if from == to {
				fmt.Fprintf(cmd.OutOrStdout(), "schema is up to date (version %d)\n", to)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "schema migrated from version %d to %d\n", from, to)
			}
			return nil
		},
	}
	mf.add(migrate, false)

	var imf storeFlags
	var allowUnknown bool
	imp := &cobra.Command{
		Use:   "import --database DSN FILE",
		Short: "Make the database's keys, tokens and clients equal to a keys file, in one transaction",
		Long: `Reads and validates a keys file and makes the stored developer keys, tokens
and clients equal to it in one transaction: entries that differ are written,
entries missing from the file are deleted, identical entries are left alone
(importing the same file twice changes nothing). OAuth revocations are kept.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.Background()
			data, err := os.ReadFile(args[0])
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "%v", err)
			}
			kf, err := policy.ParseKeysFile(args[0], data, policy.ParseOptions{AllowUnknownScopes: allowUnknown})
			if err != nil {
				var ces policy.ConfigErrors
				if errors.As(err, &ces) && len(ces) > 1 {
					return cliFail(cmd.ErrOrStderr(), "%s has %d errors; the first: %v (run validate for all)", args[0], len(ces), ces[0])
				}
				return cliFail(cmd.ErrOrStderr(), "%v", err)
			}
			conn, err := imf.open(ctx)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "%v", err)
			}
			defer conn.Close(ctx)
			rev, changed, err := fleet.Import(ctx, conn, kf)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "import: %v", err)
			}
			if changed {
				fmt.Fprintf(cmd.OutOrStdout(), "imported %d developer key(s), %d token(s), %d client(s): revision %d\n", len(kf.DeveloperKeys), len(kf.Tokens), len(kf.Clients), rev)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "no change: the database already holds this file (revision %d)\n", rev)
			}
			return nil
		},
	}
	imf.add(imp, false)
	imp.Flags().BoolVar(&allowUnknown, "allow-unknown-scopes", false, "accept scopes missing from the Canvas catalogue")

	var exf storeFlags
	exp := &cobra.Command{
		Use:   "export --database DSN",
		Short: "Write the stored keys, tokens and clients as a keys file on stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := context.Background()
			conn, err := exf.open(ctx)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "%v", err)
			}
			defer conn.Close(ctx)
			kf, _, err := fleet.Export(ctx, conn)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "export: %v", err)
			}
			if err := fleet.WriteKeysFile(cmd.OutOrStdout(), kf); err != nil {
				return cliFail(cmd.ErrOrStderr(), "export: %v", err)
			}
			return nil
		},
	}
	exf.add(exp, false)
	db.AddCommand(migrate, imp, exp)
	return db
}

// parseExpiry reads --expires: a number of days ("90d"), a Go duration
// ("36h") or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n > 0 {
			return now.Add(time.Duration(n) * 24 * time.Hour).UTC().Truncate(time.Second), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("--expires %s is in the past", s)
		}
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--expires must be a number of days (90d), a duration (36h) or an RFC 3339 time, got %q", s)
}

func tokenCommand() *cobra.Command {
	tok := &cobra.Command{
		Use:   "token",
		Short: "Create, revoke and list gateway tokens (database or keys file)",
	}
	var cf storeFlags
	var key, label, expires string
	var scopes []string
	var allowUnknown bool
	create := &cobra.Command{
		Use:   "create --key ID [--label L] [--expires 90d|RFC3339] [--scopes S,...]",
		Short: "Create a token: the token alone on stdout (shown once), its id on stderr",
		Long: `Generates a 256-bit random token for a developer key and stores only its
SHA-256. The token is printed once, alone on the first line of standard
output; it cannot be shown again. Its 12-hex-digit id, which logs and
'token revoke' use, goes to standard error.

  caddy canvas-scopes token create --keys-file keys.json --key vendor-a --label "Vendor A sync" --expires 90d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := context.Background()
			stderr := cmd.ErrOrStderr()
			if key == "" {
				return cliFail(stderr, "--key is required")
			}
			exp, err := parseExpiry(expires, time.Now())
			if err != nil {
				return cliFail(stderr, "%v", err)
			}
			var sc []string
			if cmd.Flags().Changed("scopes") {
				sc = []string{}
				for _, s := range scopes {
					if s = strings.TrimSpace(s); s != "" {
						sc = append(sc, s)
					}
				}
			}
			o := fleet.TokenOptions{Key: key, Label: label, ExpiresAt: exp, Scopes: sc, AllowUnknownScopes: allowUnknown}
			conn, err := cf.open(ctx)
			if err != nil {
				return cliFail(stderr, "%v", err)
			}
			var token, id string
			if conn == nil {
				token, id, err = createTokenInFile(cf.keysFile, o)
			} else {
				defer conn.Close(ctx)
				token, id, err = fleet.CreateToken(ctx, conn, o)
			}
			if err != nil {
				return cliFail(stderr, "token create: %v", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			fmt.Fprintf(stderr, "token id %s (developer key %s); the token above is not stored and cannot be shown again\n", id, key)
			return nil
		},
	}
	cf.add(create, true)
	create.Flags().StringVar(&key, "key", "", "developer key id (required)")
	create.Flags().StringVar(&label, "label", "", "label shown in logs and token list")
	create.Flags().StringVar(&expires, "expires", "", "expiry: 90d, 36h or an RFC 3339 time (default: never)")
	create.Flags().StringSliceVar(&scopes, "scopes", nil, "hold the token to these scopes of its key (comma-separated or repeated; default: all of the key's)")
	create.Flags().BoolVar(&allowUnknown, "allow-unknown-scopes", false, "accept scopes missing from the Canvas catalogue")

	var rf storeFlags
	revoke := &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "Revoke a token by its 12-hex-digit id",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := context.Background()
			id := strings.ToLower(args[0])
			if len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
				return cliFail(cmd.ErrOrStderr(), "a token id is 12 hex digits, got %q", args[0])
			}
			conn, err := rf.open(ctx)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "%v", err)
			}
			if conn == nil {
				err = revokeTokenInFile(rf.keysFile, id)
			} else {
				defer conn.Close(ctx)
				err = fleet.RevokeToken(ctx, conn, id)
			}
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "token revoke: %v", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", id)
			return nil
		},
	}
	rf.add(revoke, true)

	var lf storeFlags
	var listKey string
	list := &cobra.Command{
		Use:   "list [--key ID]",
		Short: "List tokens: id, key, label, expiry, revoked (never a hash or a token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := context.Background()
			conn, err := lf.open(ctx)
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "%v", err)
			}
			var infos []fleet.TokenInfo
			if conn == nil {
				infos, err = listTokensInFile(lf.keysFile, listKey)
			} else {
				defer conn.Close(ctx)
				infos, err = fleet.ListTokens(ctx, conn, listKey)
			}
			if err != nil {
				return cliFail(cmd.ErrOrStderr(), "token list: %v", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKEY\tLABEL\tEXPIRES\tREVOKED")
			for _, t := range infos {
				exp := "never"
				if !t.ExpiresAt.IsZero() {
					exp = t.ExpiresAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", t.ID, t.Key, strconv.Quote(t.Label), exp, t.Revoked)
			}
			return tw.Flush()
		},
	}
	lf.add(list, true)
	list.Flags().StringVar(&listKey, "key", "", "only this developer key's tokens")
	tok.AddCommand(create, revoke, list)
	return tok
}

// readKeysFileForEdit parses a keys file the CLI is about to rewrite.
func readKeysFileForEdit(path string) (*policy.KeysFile, os.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	kf, err := policy.ParseKeysFile(path, data, policy.ParseOptions{AllowUnknownScopes: true})
	if err != nil {
		return nil, 0, fmt.Errorf("%s does not validate; fix it first (caddy canvas-scopes validate %s)", path, path)
	}
	return kf, fi.Mode().Perm(), nil
}

func writeKeysFileAtomic(path string, mode os.FileMode, kf *policy.KeysFile) error {
	return fleet.WriteFileAtomic(path, mode, func(w io.Writer) error { return fleet.WriteKeysFile(w, kf) })
}

func createTokenInFile(path string, o fleet.TokenOptions) (string, string, error) {
	kf, mode, err := readKeysFileForEdit(path)
	if err != nil {
		return "", "", err
	}
	var key *policy.DeveloperKey
	for i := range kf.DeveloperKeys {
		if kf.DeveloperKeys[i].ID == o.Key {
			key = &kf.DeveloperKeys[i]
		}
	}
	if key == nil {
		return "", "", fmt.Errorf("%w %q in %s", fleet.ErrUnknownKey, o.Key, path)
	}
	if err := fleet.CheckTokenScopes(key, o.Scopes, o.AllowUnknownScopes); err != nil {
		return "", "", err
	}
	token, err := fleet.NewToken()
	if err != nil {
		return "", "", err
	}
	h := policy.HashToken(token)
	kf.Tokens = append(kf.Tokens, policy.Token{SHA256: h, DeveloperKey: o.Key, Label: o.Label, Scopes: o.Scopes, HasScopes: o.Scopes != nil, ExpiresAt: o.ExpiresAt})
	if err := writeKeysFileAtomic(path, mode, kf); err != nil {
		return "", "", err
	}
	return token, policy.TokenID(h), nil
}

func revokeTokenInFile(path, id string) error {
	kf, mode, err := readKeysFileForEdit(path)
	if err != nil {
		return err
	}
	var hits []int
	for i := range kf.Tokens {
		if policy.TokenID(kf.Tokens[i].SHA256) == id {
			hits = append(hits, i)
		}
	}
	switch {
	case len(hits) == 0:
		return fmt.Errorf("%w %s in %s", fleet.ErrUnknownToken, id, path)
	case len(hits) > 1:
		return fmt.Errorf("%d tokens share the id %s; edit %s by hand", len(hits), id, path)
	}
	if kf.Tokens[hits[0]].Revoked {
		return nil
	}
	kf.Tokens[hits[0]].Revoked = true
	return writeKeysFileAtomic(path, mode, kf)
}

func listTokensInFile(path, key string) ([]fleet.TokenInfo, error) {
	kf, _, err := readKeysFileForEdit(path)
	if err != nil {
		return nil, err
	}
	var out []fleet.TokenInfo
	for _, t := range kf.Tokens {
		if key == "" || t.DeveloperKey == key {
			out = append(out, fleet.TokenInfo{ID: policy.TokenID(t.SHA256), Key: t.DeveloperKey, Label: t.Label, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked})
		}
	}
	return out, nil
}
