package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

func importCommand() *cobra.Command {
	var canvas, account string
	c := &cobra.Command{
		Use:   "import --canvas URL [--account self]",
		Short: "Print a keys file's developer_keys for the API developer keys of a live Canvas",
		Long: `Lists GET /api/v1/accounts/:account_id/developer_keys on the Canvas at
--canvas (all pages), with the admin token in the CANVAS_TOKEN environment
variable (never a flag), and prints {"developer_keys": [...]} for its API
keys: id, name, scopes, require_scopes, allow_includes, and enabled from
workflow_state. LTI keys are skipped. A key's secret (api_key) is never
written anywhere. Tokens are not imported: Canvas does not reveal them;
register the ones clients use with hash-token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitWith(runImport(cmd.Context(), canvas, account, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	c.Flags().StringVar(&canvas, "canvas", "", "Canvas base URL (required)")
	c.Flags().StringVar(&account, "account", "self", "account id")
	return c
}

// canvasDeveloperKey is what import reads of Canvas's DeveloperKey object.
// It has no api_key field: the secret is not even decoded.
type canvasDeveloperKey struct {
	ID            json.Number `json:"id"`
	Name          string      `json:"name"`
	Scopes        []string    `json:"scopes"`
	RequireScopes bool        `json:"require_scopes"`
	AllowIncludes bool        `json:"allow_includes"`
	WorkflowState string      `json:"workflow_state"`
	IsLTIKey      bool        `json:"is_lti_key"`
}

// importedKey is one developer_keys entry of the keys file.
type importedKey struct {
	ID            string   `json:"id"`
	Name          string   `json:"name,omitempty"`
	Scopes        []string `json:"scopes"`
	RequireScopes bool     `json:"require_scopes"`
	AllowIncludes bool     `json:"allow_includes"`
	Enabled       bool     `json:"enabled"`
}

func runImport(ctx context.Context, canvas, account string, stdout, stderr io.Writer) int {
	if ctx == nil {
		ctx = context.Background()
	}
	cc, err := newCanvasClient(canvas)
	if err != nil {
		fmt.Fprintln(stderr, "import:", err)
		return exitUsage
	}
	var keys []canvasDeveloperKey
	err = cc.list(ctx, accountPath(account, "developer_keys"), url.Values{"per_page": {"100"}}, func(body []byte) error {
		return decodeList(body, &keys)
	})
	if err != nil {
		fmt.Fprintln(stderr, "import:", err)
		return exitUsage
	}
	out := struct {
		DeveloperKeys []importedKey `json:"developer_keys"`
	}{DeveloperKeys: []importedKey{}}
	skipped := 0
	for _, k := range keys {
		if k.IsLTIKey || k.WorkflowState == "deleted" {
			skipped++
			continue
		}
		scopes := k.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		out.DeveloperKeys = append(out.DeveloperKeys, importedKey{
			ID: k.ID.String(), Name: k.Name, Scopes: scopes,
			RequireScopes: k.RequireScopes, AllowIncludes: k.AllowIncludes,
			Enabled: strings.EqualFold(k.WorkflowState, "active"),
		})
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(stderr, "import:", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "import: %d API developer key(s); %d LTI or deleted key(s) skipped\n", len(out.DeveloperKeys), skipped)
	return exitOK
}
