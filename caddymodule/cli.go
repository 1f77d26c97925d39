package caddymodule

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/gate"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/params"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// Exit codes of `caddy canvas-scopes …`.
const (
	exitOK     = 0
	exitDenied = 1 // validate: the file has errors; explain: denied; scopes: no match
	exitUsage  = 2 // bad arguments, unreadable input
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "canvas-scopes",
		Usage: "hash-token | validate [--skip-secrets] <keys.json> | explain --keys <file> --token-sha256 <hex>|--token-id <hex>|--token-stdin <METHOD> <URL> | scopes [--grep WORD]",
		Short: "Tools for the canvas_scopes gate: hash tokens, validate keys files, explain decisions, browse scopes",
		Long: `Tools for operating the canvas_scopes handler.

  hash-token     read a token on standard input, print its sha256 for the keys file
  validate       check a keys file; every problem with file:line
  explain        show what the gate decides for one request and token
  scopes         list the Canvas URL scopes the gate knows
  token          create, revoke, list gateway tokens (keys file or database)
  db             migrate, import, export the shared PostgreSQL store
  suggest        each developer key's scopes from Caddy's JSON logs
  catalogue      fetch the scope catalogue of a live Canvas; diff it with the embedded one
  import         print developer_keys for the API keys of a live Canvas`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(hashTokenCommand(), validateCommand(), explainCommand(), scopesCommand(), tokenCommand(), dbCommand(), suggestCommand(), catalogueCommand(), importCommand())
		},
	})
}

// exitWith ends the process with code after a subcommand ran; cobra's own
// error path would print usage and always exit 1.
func exitWith(code int) error {
	if code != exitOK {
		os.Exit(code)
	}
	return nil
}

func hashTokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-token",
		Short: "Read a token on stdin and print the sha256 value for the keys file",
		Long: `Reads one token on standard input (a trailing newline is removed) and
prints the lower-case hex SHA-256 to put in the keys file's "sha256" field.
The token itself is never printed. Example:

  printf %s "$TOKEN" | caddy canvas-scopes hash-token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "reading the token from standard input (end with Enter, then Ctrl-D)")
			}
			return exitWith(runHashToken(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
}

// maxTokenBytes bounds what hash-token reads.
const maxTokenBytes = 64 << 10

// runHashToken prints sha256(token) for the token on in. It never writes
// the token anywhere.
func runHashToken(in io.Reader, stdout, stderr io.Writer) int {
	tok, problem := readOneToken(in)
	if problem != "" {
		fmt.Fprintln(stderr, "hash-token:", problem)
		return exitUsage
	}
	h := policy.HashToken(tok)
	fmt.Fprintln(stdout, hex.EncodeToString(h[:]))
	return exitOK
}

// readOneToken reads one token from in (a trailing newline is removed).
// problem says what is wrong with the input, never quoting it.
func readOneToken(in io.Reader) (tok, problem string) {
	data, err := io.ReadAll(io.LimitReader(in, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Sprintf("reading standard input: %v", err)
	}
	if len(data) > maxTokenBytes {
		return "", fmt.Sprintf("input is longer than %d bytes; expected one token", maxTokenBytes)
	}
	tok = string(data)
	tok = strings.TrimSuffix(tok, "\n")
	tok = strings.TrimSuffix(tok, "\r")
	switch {
	case tok == "":
		return "", "no token on standard input"
	case strings.ContainsAny(tok, "\r\n"):
		return "", "standard input has more than one line; expected one token"
	case strings.TrimSpace(tok) != tok:
		// A bearer token never starts or ends with white space; hashing it
		// as given would register a token no client can send.
		return "", "the token starts or ends with white space; remove it and try again"
	}
	return tok, ""
}

func validateCommand() *cobra.Command {
	var allowUnknown, skipSecrets bool
	c := &cobra.Command{
		Use:   "validate <keys.json>",
		Short: "Check a keys file and report every problem with file:line",
		Long: `Parses and compiles a keys file exactly as the handler does and prints
every problem as file:line: field: message, with suggestions for scopes
that are misspelled or missing from the Canvas scope catalogue. Exits 1
when the file has problems. upstream_token placeholders ({env.NAME},
{file.PATH}) are resolved as caddy run resolves them, so run it as the
user and with the environment Caddy has; a failure names the field and
line, never the value. --skip-secrets checks everything else, for a
machine without the secrets.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitWith(runValidate(args[0], validateOptions{allowUnknown: allowUnknown, skipSecrets: skipSecrets}, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	c.Flags().BoolVar(&allowUnknown, "allow-unknown-scopes", false, "accept well-formed scopes missing from the catalogue (as allow_unknown_scopes does)")
	c.Flags().BoolVar(&skipSecrets, "skip-secrets", false, "do not resolve upstream_token placeholders (for a machine without the secrets)")
	return c
}

type validateOptions struct {
	allowUnknown bool
	skipSecrets  bool
}

func runValidate(path string, o validateOptions, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	compile := policy.CompileOptions{ResolveSecret: resolveSecret}
	if o.skipSecrets {
		compile.ResolveSecret = nil
	}
	store, err := policy.Load(path, data, policy.ParseOptions{AllowUnknownScopes: o.allowUnknown}, compile)
	if err != nil {
		var ces policy.ConfigErrors
		var ce policy.ConfigError
		switch {
		case errors.As(err, &ces):
			for _, e := range ces {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(ces))
		case errors.As(err, &ce):
			fmt.Fprintln(stderr, ce)
			fmt.Fprintf(stderr, "%s: 1 problem(s)\n", path)
		default:
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return exitDenied
	}
	secrets := "secrets resolved"
	if o.skipSecrets {
		secrets = "secrets not resolved (--skip-secrets)"
	}
	fmt.Fprintf(stdout, "%s: ok: %d developer key(s), %d token(s), %d client(s); %s\n", path, len(store.Keys()), store.TokenCount(), store.ClientCount(), secrets)
	return exitOK
}

type explainOptions struct {
	keysFile     string
	tokenSHA256  string
	tokenID      string // 12 hex digits, as log lines carry
	tokenStdin   bool
	stdin        io.Reader
	host         string
	allowUnknown bool
	method       string
	target       string
	now          time.Time
}

func explainCommand() *cobra.Command {
	var o explainOptions
	c := &cobra.Command{
		Use:   "explain --keys <file> --token-sha256 <hex> | --token-id <12 hex> | --token-stdin <METHOD> <URL>",
		Short: "Show what the gate decides for one request made with one token",
		Long: `Runs one request through the same code the handler uses, without a
network: canonical path, decision, reason, the scope that matched (or the
catalogue scope that would be needed), and what the include filter and
credential substitution would change. The token is named by its sha256
(see hash-token), by its token id (the 12 hex digits in log lines and
the token_id placeholder), or read from standard input with
--token-stdin; never by its text on the command line. URL is a path with an optional query
(/api/v1/courses?include[]=teachers) or an absolute URL, whose host is
checked against the key's hosts. Exits 0 when the request would be
forwarded, 1 when it would be denied, 2 on a usage or keys file error.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.method, o.target, o.now, o.stdin = args[0], args[1], time.Now(), cmd.InOrStdin()
			return exitWith(runExplain(o, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	c.Flags().StringVar(&o.keysFile, "keys", "", "keys file (required)")
	c.Flags().StringVar(&o.tokenSHA256, "token-sha256", "", "sha256 of the token, 64 hex digits")
	c.Flags().StringVar(&o.tokenID, "token-id", "", "token id from a log line: the first 12 hex digits of the sha256")
	c.Flags().BoolVar(&o.tokenStdin, "token-stdin", false, "read the token itself from standard input (never echoed)")
	c.Flags().StringVar(&o.host, "host", "", "Host header of the request (default: the URL's host, if any)")
	c.Flags().BoolVar(&o.allowUnknown, "allow-unknown-scopes", false, "load the keys file as allow_unknown_scopes does")
	return c
}

func runExplain(o explainOptions, stdout, stderr io.Writer) int {
	if o.keysFile == "" {
		fmt.Fprintln(stderr, "explain: --keys is required")
		return exitUsage
	}
	hash, code := explainTokenHash(o, stderr)
	if code != exitOK {
		return code
	}
	method := strings.ToUpper(o.method)
	if method != o.method {
		fmt.Fprintf(stderr, "explain: note: Canvas routes on the method as sent; checking %s\n", method)
	}
	escapedPath, rawQuery, host, err := splitTarget(o.target)
	if err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return exitUsage
	}
	if o.host != "" {
		host = o.host
	}
	data, err := os.ReadFile(o.keysFile)
	if err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return exitUsage
	}
	store, err := policy.Load(o.keysFile, data, policy.ParseOptions{AllowUnknownScopes: o.allowUnknown}, policy.CompileOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "explain: the keys file does not load (run `caddy canvas-scopes validate %s`):\n%v\n", o.keysFile, err)
		return exitUsage
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	field := func(name, format string, args ...any) {
		fmt.Fprintf(w, "%-16s "+format+"\n", append([]any{name + ":"}, args...)...)
	}
	field("request", "%s %s", method, redactQuery(escapedPath, rawQuery))

	// The facts the handler's read step would produce for this request,
	// decided by the same gate.Decide call.
	f := gate.Facts{Method: method, Host: host, Now: o.now, TokenHash: hash, HasToken: true}
	if canonical, err := matcher.Canonicalize(escapedPath); err != nil {
		f.Refusal, _ = pathRefusal(escapedPath, err)
	} else {
		f.Path = canonical
		field("canonical path", "%s", canonical)
		insp, err := params.Inspect(params.Request{Method: method, Header: http.Header{}, RawQuery: rawQuery}, params.DefaultLimits())
		if err != nil {
			f.Refusal = gate.ParamsRefusal(err)
		} else {
			defer insp.Release()
			f.Params = insp
		}
	}
	v := gate.Decide(&f, gate.State{Store: store}, gate.Config{})

	if e := v.Policy.Token; e != nil {
		label := ""
		if e.Label != "" {
			label = fmt.Sprintf(" (%s)", e.Label)
		}
		field("token", "%s%s", e.ID, label)
		name := ""
		if e.Key.Name != "" {
			name = fmt.Sprintf(" (%s)", e.Key.Name)
		}
		field("developer key", "%s%s, mode %s", e.Key.ID, name, e.Key.Mode)
		if sets := describeScopeSets(e.Key); sets != "" {
			field("scope sets", "%s", sets)
		}
	} else if v.Action != gate.Refuse {
		field("token", "%s (not in the keys file)", v.TokenID)
	}
	needed, hasNeeded := matcher.CatalogueSet().Match(method, f.Path)
	neededScope := func() {
		if hasNeeded && (v.Label == gate.LabelWouldDeny || v.Enforced == gate.LabelInsufficient) {
			field("needed scope", "%s", needed)
		} else if !hasNeeded && v.Enforced == gate.LabelInsufficient {
			field("needed scope", "none: no catalogue scope covers %s %s", method, f.Path)
		}
	}
	switch v.Action {
	case gate.Refuse:
		field("decision", "%s", v.Label)
		field("reason", "%s", v.Message)
		return exitDenied
	case gate.Deny:
		field("decision", "%s", v.Label)
		reason := v.Reason
		if v.Policy.Outcome == policy.UnknownToken {
			reason += " (with unknown_tokens pass the request would be forwarded untouched for Canvas to check)"
		}
		field("reason", "%s", reason)
		neededScope()
		return exitDenied
	case gate.AnswerTokenEndpoint:
		field("decision", "%s", v.Enforced)
		field("answered by", "the gate: the token endpoint is never forwarded with the key's upstream_token")
		return exitDenied
	}
	if v.Label == gate.LabelWouldDeny {
		field("decision", "%s (report mode: enforce would answer %s)", v.Label, v.Enforced)
		field("reason", "%s", v.Reason)
		neededScope()
	} else {
		field("decision", "%s", v.Label)
		field("reason", "%s", nonEmpty(v.Reason, "a scope matches"))
		if v.Policy.Scope != "" {
			field("matched scope", "%s%s", v.Policy.Scope, scopeFromSets(v.Key(), v.Policy.Scope))
		}
	}
	key := v.Key()
	if key.Confined() {
		field("accounts", "%s", explainConfinement(key, v.Policy.Scope, f.Path, f.Params))
	}
	switch {
	case v.FilterIncludes && v.Rewrite.IncludesRemoved > 0:
		field("include filter", "removes %d include value(s)", v.Rewrite.IncludesRemoved)
	case v.FilterIncludes:
		field("include filter", "nothing to remove")
	case key.Mode == policy.ModeReport:
		field("include filter", "not applied (report mode forwards the request unchanged)")
	case !key.RequireScopes:
		field("include filter", "not applied (the key does not require scopes)")
	default:
		field("include filter", "not applied (the key has allow_includes)")
	}
	if v.Upstream != "" {
		field("credential", "replaced by the developer key's upstream_token")
	}
	query := rawQuery
	if v.Rewrite.QueryChanged {
		query = v.Rewrite.RawQuery
	}
	field("forwarded as", "%s %s", method, redactQuery(f.Path, query))
	return exitOK
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// splitTarget splits an absolute URL or an origin-form target into the
// escaped path (as sent), raw query and host.
func splitTarget(target string) (escapedPath, rawQuery, host string, err error) {
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return "", "", "", fmt.Errorf("URL: %v", err)
		}
		target = strings.TrimPrefix(target, u.Scheme+"://")
		host = u.Host
		i := strings.IndexByte(target, '/')
		if i < 0 {
			target = "/"
		} else {
			target = target[i:]
		}
	}
	if !strings.HasPrefix(target, "/") {
		return "", "", "", fmt.Errorf("URL must be a path starting with / or an absolute URL, got %q", target)
	}
	target, _, _ = strings.Cut(target, "#")
	escapedPath, rawQuery, _ = strings.Cut(target, "?")
	return escapedPath, rawQuery, host, nil
}

// redactQuery renders path?query with the value of every access_token
// parameter (any bracket or encoding form) replaced, so explain never
// prints a credential.
func redactQuery(path, rawQuery string) string {
	if rawQuery == "" {
		return path
	}
	pairs := strings.Split(rawQuery, "&")
	for i, p := range pairs {
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && strings.HasPrefix(strings.ToLower(name), "access_token") {
			pairs[i] = k + "=REDACTED"
		}
	}
	return path + "?" + strings.Join(pairs, "&")
}

func scopesCommand() *cobra.Command {
	var grep string
	var nonURL bool
	c := &cobra.Command{
		Use:   "scopes [--grep WORD]",
		Short: "List the Canvas URL scopes in the embedded catalogue",
		Long: `Lists the Canvas URL scopes (url:VERB|/path) the gate knows, one per
line, sorted. --grep keeps the scopes containing WORD (case-insensitive;
repeat words separated by spaces to require all of them). Exits 1 when
nothing matches.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runScopes(grep, nonURL, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	c.Flags().StringVar(&grep, "grep", "", "only scopes containing these words (case-insensitive)")
	c.Flags().BoolVar(&nonURL, "non-url", false, "also list the known non-URL scopes (LTI, /auth/userinfo, …)")
	return c
}

func runScopes(grep string, nonURL bool, stdout, stderr io.Writer) int {
	all := matcher.Catalogue()
	if nonURL {
		all = append(all, matcher.NonURLScopes()...)
	}
	words := strings.Fields(strings.ToLower(grep))
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	n := 0
outer:
	for _, s := range all {
		ls := strings.ToLower(s)
		for _, word := range words {
			if !strings.Contains(ls, word) {
				continue outer
			}
		}
		fmt.Fprintln(w, s)
		n++
	}
	if n == 0 {
		fmt.Fprintf(stderr, "no scope matches %q\n", grep)
		return exitDenied
	}
	return exitOK
}
