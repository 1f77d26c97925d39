package fleet

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// WriteKeysFile writes kf in the keys file format (one entry per line,
// default values left out), so that ParseKeysFile reads back the same
// content. Scope sets and the lists that name them (kf.Written) are
// written as they were read, "@name" references and all.
func WriteKeysFile(out io.Writer, kf *policy.KeysFile) error {
	w := bufio.NewWriterSize(out, 1<<16)
	written := kf.Written
	if written == nil {
		written = &policy.WrittenScopes{}
	}
	// asWritten is the list as written if one was kept, else l.
	asWritten := func(m map[int][]string, i int, l []string) []string {
		if wl, ok := m[i]; ok {
			return wl
		}
		return l
	}
	w.WriteString("{\n")
	if len(written.Sets) > 0 {
		w.WriteString("  \"scope_sets\": {")
		for i, set := range written.Sets {
			sep(w, i)
			str(w, set.Name)
			w.WriteString(": ")
			list(w, set.Scopes)
		}
		w.WriteString("\n  },\n")
	}
	w.WriteString("  \"developer_keys\": [")
	for i := range kf.DeveloperKeys {
		k := &kf.DeveloperKeys[i]
		sep(w, i)
		w.WriteString(`{"id": `)
		str(w, k.ID)
		if k.Name != "" {
			w.WriteString(`, "name": `)
			str(w, k.Name)
		}
		if k.Scopes != nil || k.RequireScopes {
			w.WriteString(`, "scopes": `)
			list(w, asWritten(written.Keys, i, k.Scopes))
		}
		if !k.RequireScopes {
			w.WriteString(`, "require_scopes": false`)
		}
		if k.AllowIncludes {
			w.WriteString(`, "allow_includes": true`)
		}
		if !k.Enabled {
			w.WriteString(`, "enabled": false`)
		}
		if k.Hosts != nil {
			w.WriteString(`, "hosts": `)
			list(w, k.Hosts)
		}
		if k.AllowMasquerade {
			w.WriteString(`, "allow_masquerade": true`)
		}
		if k.UpstreamToken != "" {
			w.WriteString(`, "upstream_token": `)
			str(w, k.UpstreamToken)
		}
		if k.AllowUpstreamCredentialMinting {
			w.WriteString(`, "` + policy.AllowMintingField + `": true`)
		}
		if k.Mode == policy.ModeReport {
			w.WriteString(`, "mode": "report"`)
		}
		if k.Accounts != nil {
			w.WriteString(`, "accounts": `)
			list(w, k.Accounts)
		}
		if k.UnconfinedScopes != nil {
			w.WriteString(`, "unconfined_scopes": `)
			list(w, asWritten(written.KeysUnconfined, i, k.UnconfinedScopes))
		}
		w.WriteString("}")
	}
	end(w, len(kf.DeveloperKeys))
	w.WriteString(",\n  \"tokens\": [")
	for i := range kf.Tokens {
		t := &kf.Tokens[i]
		sep(w, i)
		w.WriteString(`{"sha256": "`)
		w.WriteString(hex.EncodeToString(t.SHA256[:]))
		w.WriteString(`", "developer_key": `)
		str(w, t.DeveloperKey)
		if t.Label != "" {
			w.WriteString(`, "label": `)
			str(w, t.Label)
		}
		if t.HasScopes {
			w.WriteString(`, "scopes": `)
			list(w, asWritten(written.Tokens, i, t.Scopes))
		}
		if !t.ExpiresAt.IsZero() {
			w.WriteString(`, "expires_at": "`)
			w.WriteString(t.ExpiresAt.UTC().Format(time.RFC3339))
			w.WriteString(`"`)
		}
		if t.Revoked {
			w.WriteString(`, "revoked": true`)
		}
		w.WriteString("}")
	}
	end(w, len(kf.Tokens))
	w.WriteString(",\n  \"clients\": [")
	for i := range kf.Clients {
		c := &kf.Clients[i]
		sep(w, i)
		w.WriteString(`{"client_id": `)
		str(w, c.ClientID)
		w.WriteString(`, "secret_sha256": "`)
		w.WriteString(hex.EncodeToString(c.SecretSHA256[:]))
		w.WriteString(`", "developer_key": `)
		str(w, c.DeveloperKey)
		if c.TokenTTL != policy.DefaultClientTokenTTL {
			w.WriteString(`, "token_ttl": `)
			str(w, c.TokenTTL.String())
		}
		if c.Scopes != nil {
			w.WriteString(`, "scopes": `)
			list(w, asWritten(written.Clients, i, c.Scopes))
		}
		w.WriteString("}")
	}
	end(w, len(kf.Clients))
	w.WriteString("\n}\n")
	return w.Flush()
}

func sep(w *bufio.Writer, i int) {
	if i > 0 {
		w.WriteString(",")
	}
	w.WriteString("\n    ")
}

func end(w *bufio.Writer, n int) {
	if n > 0 {
		w.WriteString("\n  ")
	}
	w.WriteString("]")
}

func str(w *bufio.Writer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	w.Write(b)
}

func list(w *bufio.Writer, l []string) {
	w.WriteString("[")
	for i, s := range l {
		if i > 0 {
			w.WriteString(", ")
		}
		str(w, s)
	}
	w.WriteString("]")
}

// WriteFileAtomic replaces name with the bytes write produces: a temporary
// file in the same directory, synced, then renamed over name, so a reader
// sees the old or the new content, never a mix. The file gets mode perm.
func WriteFileAtomic(name string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
