package caddymodule

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

type suggestOptions struct {
	key      string
	since    time.Duration
	format   string
	keysFile string
	files    []string
	now      time.Time
}

func suggestCommand() *cobra.Command {
	var o suggestOptions
	c := &cobra.Command{
		Use:   "suggest [--key ID] [--since DURATION] [--keys FILE] [--format json|table] LOGFILE...",
		Short: "Suggest each developer key's scopes from Caddy's JSON logs",
		Long: `Reads Caddy's JSON logs (plain or gzip'd files; - for standard input),
takes the canvas_scopes decision lines, and prints for each developer key
the scopes its requests used or needed: one JSON object a line with
developer_key, suggested_scopes (ready for the keys file), needed_not_granted
and granted_not_used (this one needs --keys, the keys file in use).

Allowed requests are logged only with log_allowed: observe in report mode
(mode report, or the key's "mode": "report"), or with log_allowed 1, for a
complete list. Denied and would-be-denied requests are always logged.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files, o.now = args, time.Now()
			return exitWith(runSuggest(o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	c.Flags().StringVar(&o.key, "key", "", "only this developer key")
	c.Flags().DurationVar(&o.since, "since", 0, "only lines from the last DURATION (such as 168h)")
	c.Flags().StringVar(&o.format, "format", "json", "json (one object per key) or table")
	c.Flags().StringVar(&o.keysFile, "keys", "", "keys file, for granted_not_used")
	return c
}

// gateLogger is the logger name of the handler's decision lines.
const gateLogger = "http.handlers.canvas_scopes"

// decisionLine is the part of a decision log line suggest reads.
type decisionLine struct {
	Logger      string          `json:"logger"`
	TS          json.RawMessage `json:"ts"`
	Key         string          `json:"developer_key"`
	Scope       string          `json:"scope"`
	NeededScope string          `json:"needed_scope"`
}

// maxLogLine bounds one log line; longer lines are skipped.
const maxLogLine = 1 << 20

func runSuggest(o suggestOptions, stdin io.Reader, stdout, stderr io.Writer) int {
	if o.format == "" {
		o.format = "json"
	}
	if o.format != "json" && o.format != "table" {
		fmt.Fprintln(stderr, "suggest: --format must be json or table")
		return exitUsage
	}
	var granted map[string][]string
	if o.keysFile != "" {
		data, err := os.ReadFile(o.keysFile)
		if err != nil {
			fmt.Fprintln(stderr, "suggest:", err)
			return exitUsage
		}
		kf, err := policy.ParseKeysFile(o.keysFile, data, policy.ParseOptions{AllowUnknownScopes: true})
		if err != nil {
			fmt.Fprintf(stderr, "suggest: the keys file does not load (run `caddy canvas-scopes validate %s`):\n%v\n", o.keysFile, err)
			return exitUsage
		}
		granted = map[string][]string{}
		for _, k := range kf.DeveloperKeys {
			granted[k.ID] = append([]string{}, k.Scopes...) // never nil: the key is known
		}
	}
	var cutoff time.Time
	if o.since > 0 {
		cutoff = o.now.Add(-o.since)
	}
	tables := map[string]map[string]*usage.Entry{}
	for _, name := range o.files {
		if err := readDecisionLog(name, stdin, cutoff, o.key, tables); err != nil {
			fmt.Fprintf(stderr, "suggest: %s: %v\n", name, err)
			return exitUsage
		}
	}
	ids := make([]string, 0, len(tables))
	for id := range tables {
		ids = append(ids, id)
	}
	for id := range granted {
		if _, seen := tables[id]; !seen && (o.key == "" || o.key == id) {
			ids = append(ids, id)
		}
	}
	if o.key != "" && !slices.Contains(ids, o.key) {
		ids = append(ids, o.key)
	}
	slices.Sort(ids)
	reports := make([]usage.Report, 0, len(ids))
	for _, id := range ids {
		var entries []usage.Entry
		for _, e := range tables[id] {
			entries = append(entries, *e)
		}
		g := granted[id] // nil: not in the keys file, or no --keys
		reports = append(reports, usage.Build(id, entries, g))
	}
	if o.format == "table" {
		writeSuggestTable(stdout, reports)
		return exitOK
	}
	enc := json.NewEncoder(stdout)
	for _, r := range reports {
		r.Used = nil // the four fields; counts are in --format table
		if err := enc.Encode(r); err != nil {
			fmt.Fprintln(stderr, "suggest:", err)
			return exitUsage
		}
	}
	return exitOK
}

// readDecisionLog adds the decision lines of one log (a file, or - for
// in; gzip'd or plain) to tables.
func readDecisionLog(name string, stdin io.Reader, cutoff time.Time, onlyKey string, tables map[string]map[string]*usage.Entry) error {
	var in io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	br := bufio.NewReaderSize(in, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), maxLogLine)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"developer_key"`)) {
			continue
		}
		var d decisionLine
		if json.Unmarshal(line, &d) != nil {
			continue // not JSON: not a decision line
		}
		if d.Logger != "" && !strings.HasPrefix(d.Logger, gateLogger) {
			continue
		}
		if d.Key == "" || d.Key == unknownKeyLabel || (onlyKey != "" && d.Key != onlyKey) {
			continue
		}
		ts, hasTS := logTime(d.TS)
		if !cutoff.IsZero() && (!hasTS || ts.Before(cutoff)) {
			continue
		}
		// The line's scope allowed the request (a confinement denial
		// also names it); otherwise needed_scope is what it lacked.
		scope, allowed := d.Scope, true
		if scope == "" {
			scope, allowed = d.NeededScope, false
		}
		if scope == "" || scope == matcher.AlwaysAllowedPath {
			continue
		}
		byScope := tables[d.Key]
		if byScope == nil {
			byScope = map[string]*usage.Entry{}
			tables[d.Key] = byScope
		}
		e := byScope[scope]
		if e == nil {
			e = &usage.Entry{Scope: scope, First: ts, Last: ts}
			byScope[scope] = e
		}
		if allowed {
			e.Allowed++
		} else {
			e.Denied++
		}
		if hasTS && (e.First.IsZero() || ts.Before(e.First)) {
			e.First = ts
		}
		if ts.After(e.Last) {
			e.Last = ts
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return nil
}

// logTime reads a log line's ts: Caddy's default is Unix seconds as a
// number; a configured time_format gives a string.
func logTime(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 {
		return time.Time{}, false
	}
	var secs float64
	if json.Unmarshal(raw, &secs) == nil {
		whole := int64(secs)
		return time.Unix(whole, int64((secs-float64(whole))*1e9)).UTC(), true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for _, layout := range []string{time.RFC3339Nano, "2006/01/02 15:04:05.000", time.DateTime} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), true
			}
		}
	}
	return time.Time{}, false
}

func writeSuggestTable(w io.Writer, reports []usage.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "DEVELOPER KEY\tSCOPE\tSTATUS\tALLOWED\tDENIED\tLAST SEEN")
	for _, r := range reports {
		for _, u := range r.Used {
			status := "used"
			if slices.Contains(r.NeededNotGranted, u.Scope) {
				status = "needed, not granted"
			}
			last := "-"
			if !u.LastSeen.IsZero() {
				last = u.LastSeen.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", r.DeveloperKey, u.Scope, status, u.Allowed, u.Denied, last)
		}
		for _, s := range r.GrantedNotUsed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", r.DeveloperKey, s, "granted, not used", 0, 0, "-")
		}
	}
}
