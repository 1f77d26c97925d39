// Package keysgen writes synthetic keys files for the benchmarks and the
// scale test: many developer keys holding random catalogue scopes, and many
// tokens, a share of them narrowed to their own subsets. Token secrets are
// random and never written; only their SHA-256 is.
package keysgen

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
)

// VendorScopes is a realistic 25-scope vendor key, used by the load
// benchmark (scenarios B, D, E, F) and the handler micro-benchmarks. The
// matcher's own benchmarks keep a copy, since keysgen imports matcher.
var VendorScopes = []string{
	"url:GET|/api/v1/courses",
	"url:GET|/api/v1/courses/:id",
	"url:GET|/api/v1/courses/:course_id/assignments",
	"url:GET|/api/v1/courses/:course_id/assignments/:id",
	"url:POST|/api/v1/courses/:course_id/assignments",
	"url:PUT|/api/v1/courses/:course_id/assignments/:id",
	"url:GET|/api/v1/courses/:course_id/assignments/:assignment_id/submissions",
	"url:GET|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id",
	"url:PUT|/api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id",
	"url:POST|/api/v1/courses/:course_id/assignments/:assignment_id/submissions",
	"url:GET|/api/v1/courses/:course_id/students/submissions",
	"url:GET|/api/v1/courses/:course_id/users",
	"url:GET|/api/v1/courses/:course_id/enrollments",
	"url:POST|/api/v1/courses/:course_id/enrollments",
	"url:GET|/api/v1/users/:id",
	"url:GET|/api/v1/users/:user_id/profile",
	"url:GET|/api/v1/users/:user_id/enrollments",
	"url:GET|/api/v1/courses/:course_id/sections",
	"url:GET|/api/v1/courses/:course_id/modules",
	"url:GET|/api/v1/courses/:course_id/modules/:module_id/items",
	"url:GET|/api/v1/courses/:course_id/assignment_groups",
	"url:GET|/api/v1/courses/:course_id/rubrics",
	"url:GET|/api/v1/accounts/:account_id/courses",
	"url:POST|/api/v1/accounts/:account_id/courses",
	"url:PUT|/api/v1/courses/:id",
}

// Options shape a generated file.
type Options struct {
	Keys      int    // developer keys
	Tokens    int    // random tokens spread over the keys
	Seed      uint64 // same seed, same file (apart from Extra)
	MinScopes int    // per key; default 5
	MaxScopes int    // per key; default 60
	// SubsetShare is the share of tokens with their own scopes (a random
	// subset of their key's, 1 to MaxSubset scopes). Default 0.3.
	SubsetShare float64
	MaxSubset   int // default 10
	// ExpiringShare and RevokedShare of the tokens carry expires_at in the
	// future or revoked: true. Defaults 0.1 and 0.01.
	ExpiringShare float64
	RevokedShare  float64
	// Extra keys are written first, with their tokens.
	Extra []Key
}

// Key is an extra developer key with known tokens (for load tests).
type Key struct {
	ID            string
	Scopes        []string
	UpstreamToken string   // written as is (e.g. "{env.X}")
	Tokens        []string // secrets; only their SHA-256 is written
}

func (o *Options) defaults() {
	if o.MinScopes <= 0 {
		o.MinScopes = 5
	}
	if o.MaxScopes < o.MinScopes {
		o.MaxScopes = max(60, o.MinScopes)
	}
	if o.SubsetShare == 0 {
		o.SubsetShare = 0.3
	}
	if o.MaxSubset <= 0 {
		o.MaxSubset = 10
	}
	if o.ExpiringShare == 0 {
		o.ExpiringShare = 0.1
	}
	if o.RevokedShare == 0 {
		o.RevokedShare = 0.01
	}
}

// Stats describe what Write produced.
type Stats struct {
	Keys, Tokens, SubsetTokens int
	Bytes                      int64
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Write writes a keys file.
func Write(w io.Writer, o Options) (Stats, error) {
	o.defaults()
	var st Stats
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<16)
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	cat := matcher.Catalogue()
	quoted := make([]string, len(cat))
	for i, s := range cat {
		b, _ := json.Marshal(s)
		quoted[i] = string(b)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	writeList := func(idx []int) {
		bw.WriteByte('[')
		for i, x := range idx {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString(quoted[x])
		}
		bw.WriteByte(']')
	}

	bw.WriteString("{\n\"developer_keys\": [\n")
	first := true
	sep := func() {
		if !first {
			bw.WriteString(",\n")
		}
		first = false
	}
	for _, k := range o.Extra {
		sep()
		ss := make([]string, len(k.Scopes))
		for i, s := range k.Scopes {
			ss[i] = q(s)
		}
		fmt.Fprintf(bw, `{"id":%s,"scopes":[%s]`, q(k.ID), join(ss))
		if k.UpstreamToken != "" {
			fmt.Fprintf(bw, `,"upstream_token":%s`, q(k.UpstreamToken))
		}
		bw.WriteString("}")
		st.Keys++
	}
	keyScopes := make([][]int, o.Keys)
	for i := range o.Keys {
		n := o.MinScopes + r.IntN(o.MaxScopes-o.MinScopes+1)
		keyScopes[i] = r.Perm(len(cat))[:n]
		sep()
		fmt.Fprintf(bw, `{"id":"key-%05d","name":"Generated key %d","scopes":`, i, i)
		writeList(keyScopes[i])
		bw.WriteString("}")
		st.Keys++
	}
	bw.WriteString("\n],\n\"tokens\": [\n")
	first = true
	for _, k := range o.Extra {
		for j, t := range k.Tokens {
			sep()
			h := sha256.Sum256([]byte(t))
			fmt.Fprintf(bw, `{"sha256":"%s","developer_key":%s,"label":"bench %s %d"}`, hex.EncodeToString(h[:]), q(k.ID), k.ID, j)
			st.Tokens++
		}
	}
	expires := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	var h [32]byte
	for i := range o.Tokens {
		sep()
		for j := 0; j < 32; j += 8 {
			v := r.Uint64()
			for b := range 8 {
				h[j+b] = byte(v >> (8 * b))
			}
		}
		ki := r.IntN(o.Keys)
		fmt.Fprintf(bw, `{"sha256":"%s","developer_key":"key-%05d","label":"token %d"`, hex.EncodeToString(h[:]), ki, i)
		if r.Float64() < o.SubsetShare {
			ks := keyScopes[ki]
			n := 1 + r.IntN(min(o.MaxSubset, len(ks)))
			sub := make([]int, n)
			for j, p := range r.Perm(len(ks))[:n] {
				sub[j] = ks[p]
			}
			bw.WriteString(`,"scopes":`)
			writeList(sub)
			st.SubsetTokens++
		}
		if r.Float64() < o.ExpiringShare {
			fmt.Fprintf(bw, `,"expires_at":"%s"`, expires)
		}
		if r.Float64() < o.RevokedShare {
			bw.WriteString(`,"revoked":true`)
		}
		bw.WriteString("}")
		st.Tokens++
	}
	bw.WriteString("\n]\n}\n")
	if err := bw.Flush(); err != nil {
		return st, err
	}
	st.Bytes = cw.n
	return st, nil
}

func join(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}
