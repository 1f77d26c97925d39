package policy

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// The table must answer as a Go map from digest to entry would, including
// digests that share their first eight bytes (one slot, a probe run),
// repeated digests (the last wins) and misses that land inside a run.
func TestTokenTableIsAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 7, 8, 9, 100, 5000} {
		hashes := make([][32]byte, n)
		for i := range hashes {
			switch {
			case i > 0 && i%10 == 0: // a repeat of an earlier digest
				hashes[i] = hashes[rng.IntN(i)]
			case i > 0 && i%3 == 0: // same slot as an earlier digest
				hashes[i] = hashes[rng.IntN(i)]
				hashes[i][31] ^= byte(1 + rng.IntN(255))
			default:
				hashes[i] = sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(n)})
			}
		}
		entries := make([]TokenEntry, n)
		want := map[[32]byte]*TokenEntry{}
		for i := range entries {
			entries[i].Label = string(rune('a' + i%26))
			want[hashes[i]] = &entries[i]
		}
		table := newTokenTable(entries, hashes)
		if table.count != len(want) {
			t.Fatalf("n=%d: count %d, want %d", n, table.count, len(want))
		}
		if n > 0 && len(table.slots) < 2*n {
			t.Fatalf("n=%d: %d slots, want at least %d (half full at most)", n, len(table.slots), 2*n)
		}
		for h, e := range want {
			if got := table.lookup(&h); got != e {
				t.Fatalf("n=%d: lookup of a registered digest found entry %p, want %p", n, got, e)
			}
			miss := h
			miss[20] ^= 0x80 // same slot, different digest
			if _, ok := want[miss]; !ok && table.lookup(&miss) != nil {
				t.Fatalf("n=%d: lookup of an unregistered digest found an entry", n)
			}
		}
		for range 1000 {
			var h [32]byte
			for i := range h {
				h[i] = byte(rng.Uint32())
			}
			if _, ok := want[h]; !ok && table.lookup(&h) != nil {
				t.Fatalf("n=%d: a random digest found an entry", n)
			}
		}
	}
}
