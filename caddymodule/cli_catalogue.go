package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

func catalogueCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "catalogue fetch|diff",
		Short: "Keep the scope catalogue current: fetch it from a live Canvas, compare it with the embedded one",
	}
	var canvas, account, out string
	fetch := &cobra.Command{
		Use:   "fetch --canvas URL [--account self] [--out FILE]",
		Short: "Write the scope catalogue of a live Canvas (token from CANVAS_TOKEN)",
		Long: `Calls GET /api/v1/accounts/:account_id/scopes on the Canvas at --canvas
with the admin token in the CANVAS_TOKEN environment variable (never a
flag), and writes its URL scopes, one a line, sorted, after a header line
naming the Canvas and the date: a catalogue file for "catalogue diff".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runCatalogueFetch(cmd.Context(), canvas, account, out, time.Now(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	fetch.Flags().StringVar(&canvas, "canvas", "", "Canvas base URL (required)")
	fetch.Flags().StringVar(&account, "account", "self", "account id")
	fetch.Flags().StringVar(&out, "out", "", "write to FILE instead of standard output")
	diff := &cobra.Command{
		Use:   "diff FILE",
		Short: "Show what a catalogue file adds to and removes from the embedded catalogue",
		Long: `Compares a catalogue file (one scope a line; lines starting with # are
comments) with the catalogue built into this binary. Each removed scope is
shown with the closest added one: a renamed route parameter is the common
case, and keys holding the old scope need the new one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return exitWith(runCatalogueDiff(args[0], cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	c.AddCommand(fetch, diff)
	return c
}

// canvasScope is the part of Canvas's Scope object the catalogue needs.
type canvasScope struct {
	Scope string `json:"scope"`
}

func runCatalogueFetch(ctx context.Context, canvas, account, out string, now time.Time, stdout, stderr io.Writer) int {
	if ctx == nil {
		ctx = context.Background()
	}
	cc, err := newCanvasClient(canvas)
	if err != nil {
		fmt.Fprintln(stderr, "catalogue fetch:", err)
		return exitUsage
	}
	var scopes []canvasScope
	err = cc.list(ctx, accountPath(account, "scopes"), url.Values{"per_page": {"100"}}, func(body []byte) error {
		return decodeList(body, &scopes)
	})
	if err != nil {
		fmt.Fprintln(stderr, "catalogue fetch:", err)
		return exitUsage
	}
	var list []string
	for _, s := range scopes {
		if strings.HasPrefix(s.Scope, "url:") {
			list = append(list, s.Scope)
		}
	}
	slices.Sort(list)
	list = slices.Compact(list)
	if len(list) == 0 {
		fmt.Fprintln(stderr, "catalogue fetch: Canvas listed no URL scopes")
		return exitUsage
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Canvas URL scopes of %s, fetched %s (%d scopes)\n", cc.base, now.UTC().Format(time.DateOnly), len(list))
	for _, s := range list {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	if out == "" {
		io.WriteString(stdout, b.String())
		return exitOK
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(stderr, "catalogue fetch:", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "catalogue fetch: wrote %d scopes to %s\n", len(list), out)
	return exitOK
}

// readCatalogueFile reads a catalogue file: one scope a line, # comments.
func readCatalogueFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if prob := matcher.CheckScope(line, true); prob != nil {
			return nil, fmt.Errorf("%s:%d: %s", path, i+1, prob.Message())
		}
		list = append(list, line)
	}
	if len(list) == 0 {
		return nil, errors.New(path + ": no scopes")
	}
	slices.Sort(list)
	return slices.Compact(list), nil
}

// loadCatalogueFile reads a catalogue file for validation.
func loadCatalogueFile(path string) (*matcher.FileCatalogue, error) {
	list, err := readCatalogueFile(path)
	if err != nil {
		return nil, err
	}
	return matcher.NewFileCatalogue(list)
}

func runCatalogueDiff(path string, stdout, stderr io.Writer) int {
	fresh, err := readCatalogueFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "catalogue diff:", err)
		return exitUsage
	}
	embedded := matcher.Catalogue()
	var added, removed []string
	for _, s := range fresh {
		if _, found := slices.BinarySearch(embedded, s); !found {
			added = append(added, s)
		}
	}
	for _, s := range embedded {
		if _, found := slices.BinarySearch(fresh, s); !found {
			removed = append(removed, s)
		}
	}
	fmt.Fprintf(stdout, "%s: %d scopes; embedded catalogue: %d; %d added, %d removed\n", path, len(fresh), len(embedded), len(added), len(removed))
	for _, s := range added {
		fmt.Fprintf(stdout, "+ %s\n", s)
	}
	for _, s := range removed {
		if r := closestRenamed(s, added); r != "" {
			fmt.Fprintf(stdout, "- %s  (closest new: %s)\n", s, r)
		} else {
			fmt.Fprintf(stdout, "- %s\n", s)
		}
	}
	return exitOK
}

// closestRenamed is the added scope of the same verb nearest to a removed
// one, when near enough to be the same route renamed.
func closestRenamed(removed string, added []string) string {
	verb, _, _ := strings.Cut(removed, "|")
	best, bestD := "", len(removed)/3+1
	for _, a := range added {
		if !strings.HasPrefix(a, verb+"|") {
			continue
		}
		if d := matcher.EditDistance(removed, a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}
