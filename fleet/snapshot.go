package fleet

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/policy"
)

// snapshotHeader is the snapshot file's envelope; keys_file is a keys file
// (WriteKeysFile) holding token hashes and placeholders, never secrets.
type snapshotFile struct {
	Format      int                  `json:"canvas_scopes_snapshot"`
	Revision    int64                `json:"revision"`
	WrittenAt   time.Time            `json:"written_at"`
	Revocations []snapshotRevocation `json:"oauth_revocations"`
	KeysFile    json.RawMessage      `json:"keys_file"`
}

type snapshotRevocation struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// saveSnapshot writes the model to SnapshotFile in the background. The
// model is copied here, on the sync goroutine; the encoding and the write
// happen elsewhere. While a write is running, the next one waits for the
// next poll (the sync loop calls this after every read).
func (s *Syncer) saveSnapshot() {
	if s.opts.SnapshotFile == "" || s.m == nil || s.m.rev == s.snapRev {
		return
	}
	s.snapMu.Lock()
	if s.snapBusy {
		s.snapMu.Unlock()
		return
	}
	s.snapBusy = true
	s.snapMu.Unlock()
	s.snapRev = s.m.rev
	kf := s.m.keysFile(true)
	now := time.Now()
	snap := snapshotFile{Format: 1, Revision: s.m.rev, WrittenAt: now.UTC()}
	for _, r := range s.m.revocations {
		if r.ExpiresAt.After(now) {
			snap.Revocations = append(snap.Revocations, snapshotRevocation{ID: hex.EncodeToString(r.ID[:]), ClientID: r.ClientID, ExpiresAt: r.ExpiresAt.UTC()})
		}
	}
	s.snapWG.Add(1)
	go func() {
		defer s.snapWG.Done()
		err := WriteFileAtomic(s.opts.SnapshotFile, 0o600, func(w io.Writer) error {
			var body bytes.Buffer
			if err := WriteKeysFile(&body, kf); err != nil {
				return err
			}
			snap.KeysFile = body.Bytes()
			return json.NewEncoder(w).Encode(&snap)
		})
		if err != nil {
			s.log.Error("cannot write the snapshot file", zap.String("snapshot_file", s.opts.SnapshotFile), zap.Error(err))
		}
		s.snapMu.Lock()
		s.snapBusy = false
		s.snapMu.Unlock()
	}()
}

// loadSnapshot starts the syncer from SnapshotFile.
func (s *Syncer) loadSnapshot() error {
	data, err := os.ReadFile(s.opts.SnapshotFile)
	if err != nil {
		return err
	}
	var snap snapshotFile
	if err := json.Unmarshal(data, &snap); err != nil || snap.Format != 1 {
		return fmt.Errorf("%s is not a canvas_scopes snapshot", s.opts.SnapshotFile)
	}
	kf, err := policy.ParseKeysFile(s.opts.SnapshotFile, snap.KeysFile, policy.ParseOptions{AllowUnknownScopes: true})
	if err != nil {
		return err
	}
	m := newModel()
	m.rev = snap.Revision
	for i, k := range kf.DeveloperKeys {
		m.keys[k.ID] = keyRow{DeveloperKey: k, Position: int64(i)}
	}
	m.tokens = make(map[[32]byte]tokenRow, len(kf.Tokens))
	for i, t := range kf.Tokens {
		m.putToken(tokenRow{Token: t, Position: int64(i)})
	}
	for i, c := range kf.Clients {
		m.clients[c.ClientID] = clientRow{Client: c, Position: int64(i)}
	}
	for _, r := range snap.Revocations {
		var id [16]byte
		if b, err := hex.DecodeString(r.ID); err == nil && len(b) == 16 {
			copy(id[:], b)
			m.revocations[id] = OAuthRevocation{ID: id, ClientID: r.ClientID, ExpiresAt: r.ExpiresAt}
		}
	}
	store, err := policy.Compile(s.opts.SnapshotFile, kf, s.opts.Compile)
	if err != nil {
		return err
	}
	s.m = m
	s.snapRev = m.rev
	s.publish(store, m.rev)
	// The snapshot is as fresh as when it was written, not now.
	s.lastSync.Store(snap.WrittenAt.UnixNano())
	if s.opts.OnRevocations != nil && len(m.revocations) > 0 {
		s.opts.OnRevocations(revocationList(m.revocations))
	}
	return nil
}
