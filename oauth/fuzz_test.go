package oauth

import (
	"strings"
	"testing"
)

// FuzzVerify: parsing never panics, and no token other than the exact
// issued text verifies. The corpus seeds are real tokens; the fuzzer
// mutates them. A mutated token may only verify if it is byte-for-byte a
// token we issued (i.e. not mutated at all).
func FuzzVerify(f *testing.F) {
	s, err := NewSigner([][]byte{keyA, keyB})
	if err != nil {
		f.Fatal(err)
	}
	issued := map[string]bool{}
	for i, c := range []Claims{testClaims(), {ID: [16]byte{9}, KeyID: "k", ClientID: "c", IssuedAt: t0, ExpiresAt: t0.Add(1)}} {
		c.ID[15] = byte(i)
		tok, err := s.Issue(c)
		if err != nil {
			f.Fatal(err)
		}
		issued[tok] = true
		f.Add(tok)
	}
	f.Add("cgw1.")
	f.Add("cgw1..")
	f.Add("cgw1.AA.AA")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(tok)
		if err != nil {
			return
		}
		if !issued[tok] {
			t.Fatalf("a token that was never issued verified: %q (%+v)", tok, c)
		}
		if !strings.HasPrefix(tok, Prefix) {
			t.Fatalf("verified without prefix: %q", tok)
		}
	})
}
