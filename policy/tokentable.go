package policy

import (
	"encoding/binary"
	"math/bits"
)

// tokenTable is the store's index from a token's SHA-256 to its entry: an
// open-addressed table with linear probing. Its keys are SHA-256 digests,
// already uniformly spread, so a digest's first eight bytes choose its slot
// and no second hash is computed; a slot is a 4-byte entry number where a
// Go map keeps a 32-byte key and an 8-byte pointer. At most half the slots
// are used, so probe runs stay short, and a lookup of a digest an attacker
// chose can only walk runs the keys file made.
type tokenTable struct {
	slots   []uint32   // entry number + 1; 0 is an empty slot
	hashes  [][32]byte // hashes[i] is the key of entries[i]
	entries []TokenEntry
	count   int // distinct digests
	// overlay holds entries changed since the table was built (see
	// Store.Patch): a nil value is a removed token. Nil for stores
	// compiled whole, so the file path pays one nil check.
	overlay map[[32]byte]*TokenEntry
}

// newTokenTable indexes entries by hashes (same length). When a digest
// repeats, the last entry holding it wins, as in a map; the keys file
// parser already refuses repeated digests.
func newTokenTable(entries []TokenEntry, hashes [][32]byte) tokenTable {
	t := tokenTable{hashes: hashes, entries: entries}
	if len(entries) == 0 {
		return t
	}
	t.slots = make([]uint32, 1<<max(3, bits.Len(uint(2*len(entries)-1))))
	mask := uint64(len(t.slots) - 1)
	for n := range entries {
		i := binary.LittleEndian.Uint64(hashes[n][:8]) & mask
		for ; ; i = (i + 1) & mask {
			if t.slots[i] == 0 {
				t.slots[i] = uint32(n + 1)
				t.count++
				break
			}
			if t.hashes[t.slots[i]-1] == hashes[n] {
				t.slots[i] = uint32(n + 1)
				break
			}
		}
	}
	return t
}

// lookup returns the entry registered under h, or nil.
func (t *tokenTable) lookup(h *[32]byte) *TokenEntry {
	if t.overlay != nil {
		if e, ok := t.overlay[*h]; ok {
			return e
		}
	}
	if len(t.slots) == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := binary.LittleEndian.Uint64(h[:8]) & mask; ; i = (i + 1) & mask {
		n := t.slots[i]
		if n == 0 {
			return nil
		}
		if t.hashes[n-1] == *h {
			return &t.entries[n-1]
		}
	}
}
