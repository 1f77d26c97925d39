package caddymodule

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// explainTokenHash finds the SHA-256 of the token explain is asked about,
// from exactly one of --token-sha256, --token-id (looked up in the keys
// file) and --token-stdin. The token itself is never printed.
func explainTokenHash(o explainOptions, stderr io.Writer) (hash [32]byte, code int) {
	given := 0
	for _, set := range []bool{o.tokenSHA256 != "", o.tokenID != "", o.tokenStdin} {
		if set {
			given++
		}
	}
	if given != 1 {
		fmt.Fprintln(stderr, "explain: name the token with exactly one of --token-sha256, --token-id or --token-stdin")
		return hash, exitUsage
	}
	switch {
	case o.tokenStdin:
		tok, problem := readOneToken(o.stdin)
		if problem != "" {
			fmt.Fprintln(stderr, "explain: --token-stdin:", problem)
			return hash, exitUsage
		}
		return policy.HashToken(tok), exitOK
	case o.tokenID != "":
		return hashOfTokenID(o, stderr)
	}
	if len(o.tokenSHA256) != 64 {
		fmt.Fprintln(stderr, "explain: --token-sha256 must be 64 hex digits (see `caddy canvas-scopes hash-token`)")
		return hash, exitUsage
	}
	if _, err := hex.Decode(hash[:], []byte(strings.ToLower(o.tokenSHA256))); err != nil {
		fmt.Fprintln(stderr, "explain: --token-sha256 must be 64 hex digits (see `caddy canvas-scopes hash-token`)")
		return hash, exitUsage
	}
	return hash, exitOK
}

// hashOfTokenID finds the registered token whose id (the first 12 hex
// digits of its SHA-256, as the decision log writes it) is o.tokenID.
func hashOfTokenID(o explainOptions, stderr io.Writer) (hash [32]byte, code int) {
	id := strings.ToLower(o.tokenID)
	if _, err := hex.DecodeString(id); err != nil || len(id) != 12 {
		fmt.Fprintln(stderr, "explain: --token-id must be 12 hex digits, as in the token_id field of log lines")
		return hash, exitUsage
	}
	data, err := os.ReadFile(o.keysFile)
	if err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return hash, exitUsage
	}
	kf, err := policy.ParseKeysFile(o.keysFile, data, policy.ParseOptions{AllowUnknownScopes: o.allowUnknown})
	if err != nil {
		fmt.Fprintf(stderr, "explain: the keys file does not load (run `caddy canvas-scopes validate %s`):\n%v\n", o.keysFile, err)
		return hash, exitUsage
	}
	found := 0
	for _, t := range kf.Tokens {
		if policy.TokenID(t.SHA256) == id {
			hash = t.SHA256
			found++
		}
	}
	switch found {
	case 0:
		// Not registered: the gate answers Invalid access token (or, with
		// unknown_tokens pass, forwards it for Canvas to check). A gateway
		// token from the OAuth endpoint has an id of its own, not in the file.
		fmt.Fprintf(stderr, "explain: no token in %s has id %s: the gate answers it invalid_token (Invalid access token.), or forwards it untouched with unknown_tokens pass\n", o.keysFile, id)
		return hash, exitDenied
	case 1:
		return hash, exitOK
	}
	fmt.Fprintf(stderr, "explain: %d tokens in %s have id %s; name one with --token-sha256\n", found, o.keysFile, id)
	return hash, exitUsage
}
