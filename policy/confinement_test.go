package policy

import (
	"slices"
	"strings"
	"testing"
)

func TestConfinedKeyFields(t *testing.T) {
	good := `{"developer_keys": [
  {"id": "eng", "accounts": ["42", "sis_account_id:ENG"],
   "scopes": ["url:GET|/api/v1/courses/:course_id/enrollments", "url:GET|/api/v1/users/:id", "/auth/userinfo"],
   "unconfined_scopes": ["url:GET|/api/v1/users/:id"]},
  {"id": "plain", "scopes": ["url:GET|/api/v1/users/:id"]}
]}`
	s, err := Load("keys.json", []byte(good), ParseOptions{}, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng, plain := s.Key("eng"), s.Key("plain")
	if !eng.Confined() || plain.Confined() {
		t.Errorf("Confined: eng %v, plain %v", eng.Confined(), plain.Confined())
	}
	if !slices.Equal(eng.Accounts, []string{"42", "sis_account_id:ENG"}) {
		t.Errorf("accounts %q", eng.Accounts)
	}
	if !eng.Unconfined("url:GET|/api/v1/users/:id") || eng.Unconfined("url:GET|/api/v1/courses/:course_id/enrollments") {
		t.Error("Unconfined answers wrongly")
	}
}

func TestConfinedKeyErrors(t *testing.T) {
	bad := `{"developer_keys": [
  {"id": "a", "accounts": ["42"],
   "scopes": [
     "url:GET|/api/v1/courses/:course_id/enrollments",
     "url:GET|/api/v1/users/:id",
     "url:GET|/api/v1/courses"]},
  {"id": "b", "accounts": ["", "7/8", "9", "9"], "scopes": []},
  {"id": "c", "accounts": ["1"], "require_scopes": false},
  {"id": "d", "scopes": ["url:GET|/api/v1/users/:id"],
   "unconfined_scopes": ["url:GET|/api/v1/users/:id"]},
  {"id": "e", "accounts": ["1"], "scopes": ["url:GET|/api/v1/users/:id"],
   "unconfined_scopes": ["url:GET|/api/v1/conversations"]}
]}`
	_, err := Load("keys.json", []byte(bad), ParseOptions{}, CompileOptions{})
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`keys.json:5: developer_keys[0].scopes[1]: scope "url:GET|/api/v1/users/:id" has no account context (a user, who exists outside accounts)`,
		`keys.json:6: developer_keys[0].scopes[2]: scope "url:GET|/api/v1/courses" has no account context`,
		`keys.json:7: developer_keys[1].accounts[0]: must be an account id`,
		`keys.json:7: developer_keys[1].accounts[1]: must be an account id`,
		`keys.json:7: developer_keys[1].accounts[3]: duplicate account "9"`,
		`keys.json:8: developer_keys[2].accounts: needs require_scopes true`,
		`keys.json:10: developer_keys[3].unconfined_scopes: has no effect without accounts`,
		`keys.json:12: developer_keys[4].unconfined_scopes[0]: scope "url:GET|/api/v1/conversations" is not one of the key's scopes`,
		`keys.json:11: developer_keys[4].scopes[0]: scope "url:GET|/api/v1/users/:id" has no account context`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "enrollments") {
		t.Errorf("a confinable scope was reported:\n%s", msg)
	}
}
