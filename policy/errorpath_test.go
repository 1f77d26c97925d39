package policy

import (
	"errors"
	"regexp"
	"testing"
)

// Every error about an entry of developer_keys, tokens or clients names the
// entry by its index (tokens[1].developer_key), whichever check found it:
// the reader, the cross-references or the compiler.
func TestErrorFieldsNameTheEntryIndex(t *testing.T) {
	const hash = "cccbb6245f7b2ad4b7924d510ea4aa79a524f7a6f55c4407c83251d0730b7687"
	crossChecked := `{"developer_keys": [{"id": "a", "scopes": ["url:GET|/api/v1/courses"]}, {"id": "a", "scopes": []}],
"tokens": [{"sha256": "` + hash + `", "developer_key": "a"}, {"sha256": "` + hash + `", "developer_key": "b"}],
"clients": [{"client_id": "c", "secret_sha256": "` + hash + `", "developer_key": "a"}, {"client_id": "c", "secret_sha256": "` + hash + `", "developer_key": "z"}]}`
	compiled := `{"developer_keys": [{"id": "a", "scopes": ["url:GET|/api/v1/courses"]}, {"id": "b", "scopes": [], "upstream_token": "{env.X}"}],
"clients": [{"client_id": "c", "secret_sha256": "` + hash + `", "developer_key": "a"}, {"client_id": "d", "secret_sha256": "` + hash + `", "developer_key": "a", "scopes": ["url:GET|/api/v1/accounts"]}]}`
	failing := CompileOptions{ResolveSecret: func(string) (string, error) { return "", errors.New("no") }}
	want := map[string]bool{
		"developer_keys[1].id": false, "tokens[1].developer_key": false, "tokens[1].sha256": false,
		"clients[1].developer_key": false, "clients[1].client_id": false,
		"developer_keys[1].upstream_token": false, "clients[1].scopes": false,
	}
	indexed := regexp.MustCompile(`^(developer_keys|tokens|clients)\[\d+\]\.`)
	for _, file := range []string{crossChecked, compiled} {
		_, err := Load("k.json", []byte(file), ParseOptions{}, failing)
		var ces ConfigErrors
		if !errors.As(err, &ces) {
			t.Fatalf("want ConfigErrors, got %v", err)
		}
		for _, e := range ces {
			if !indexed.MatchString(e.Field) {
				t.Errorf("field without its entry's index: %v", e)
			}
			if _, ok := want[e.Field]; ok {
				want[e.Field] = true
			}
		}
	}
	for field, seen := range want {
		if !seen {
			t.Errorf("no error for %s", field)
		}
	}
}
