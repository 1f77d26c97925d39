package e2e

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the caddy adapt golden files")

// TestCaddyfileAdaptGolden runs `caddy adapt` on each testdata/adapt/*.caddyfile
// and compares the JSON with its golden file. The gate must come before
// respond and reverse_proxy in the adapted route list.
func TestCaddyfileAdaptGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no golden inputs")
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			out, err := runCaddy(t, "adapt", "--config", in, "--adapter", "caddyfile", "--pretty")
			if err != nil {
				t.Fatalf("adapt: %v\n%s", err, out)
			}
			// adapt prints warnings on stderr before the JSON; keep the JSON.
			got := out[strings.Index(out, "{"):]
			golden := strings.TrimSuffix(in, ".caddyfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
				t.Errorf("adapted JSON differs from %s:\n%s", golden, got)
			}
			gate, proxy := strings.Index(got, `"handler": "canvas_scopes"`), strings.Index(got, `"handler": "reverse_proxy"`)
			if gate < 0 || proxy < 0 || gate > proxy {
				t.Errorf("canvas_scopes does not come before reverse_proxy")
			}
			if resp := strings.Index(got, `"handler": "static_response"`); resp >= 0 && resp < gate {
				t.Errorf("respond comes before canvas_scopes: the gate would never run")
			}
		})
	}
}

func TestCaddyfileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{"canvas_scopes {\n\t\tunknown_tokens maybe\n\t\tkeys_file k.json\n\t}", "unknown_tokens must be deny or pass"},
		{"canvas_scopes {\n\t\tkeys_file k.json\n\t\tcolour red\n\t}", "unknown canvas_scopes option"},
		{"canvas_scopes {\n\t\treload_interval\n\t}", "wrong argument count"},
		{"canvas_scopes {\n\t\tanonymous pass\n\t}", "exactly one of keys_file and database is required"},
		{"canvas_scopes {\n\t\tkeys_file k.json\n\t\tdatabase {env.DSN}\n\t}", "exactly one of keys_file and database is required"},
		{"canvas_scopes {\n\t\tdatabase {env.DSN}\n\t\tstale_policy maybe\n\t}", "stale_policy must be serve or deny"},
		{"canvas_scopes {\n\t\tkeys_file k.json\n\t\tmax_body_size lots\n\t}", "max_body_size must be a size"},
	} {
		cfg := filepath.Join(dir, "Caddyfile")
		writeFile(t, cfg, ":8080 {\n\t"+c.body+"\n\treverse_proxy 127.0.0.1:9\n}\n")
		out, err := runCaddy(t, "adapt", "--config", cfg, "--adapter", "caddyfile")
		if err == nil || !strings.Contains(out, c.want) || !strings.Contains(out, "Caddyfile:") {
			t.Errorf("%q: want an error with file:line containing %q, got %v:\n%s", c.body, c.want, err, out)
		}
	}
}

// TestExampleValidates runs `caddy validate` on Caddyfile.example, which
// provisions the gate (loading examples/keys.json and resolving secrets).
func TestExampleValidates(t *testing.T) {
	out, err := runCaddyIn(t, "..", "validate", "--config", "Caddyfile.example")
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("caddy validate Caddyfile.example: %v\n%s", err, out)
	}
}
