package rackparity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// StandIn is the real Puma 5.6 serving reading.rb on 127.0.0.1: an
// upstream that answers every request with its Reading as JSON and keeps
// the readings for Take.
type StandIn struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port

	dir string
	cmd *exec.Cmd
	log *limitedWriter
	mu  sync.Mutex
	// exited is closed when the puma process has ended.
	exited chan struct{}
}

// StartStandIn starts puma on a free port and waits until it answers.
func StartStandIn() (*StandIn, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	puma, err := exec.LookPath("puma")
	if err != nil {
		return nil, errors.New("puma is not on PATH (Debian package: puma)")
	}
	dir, err := extract()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startPuma(puma, dir)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func startPuma(puma, dir string) (*StandIn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &StandIn{URL: "http://" + addr, Addr: addr, dir: dir, log: &limitedWriter{buf: &bytes.Buffer{}, max: 16 << 10}}
	// One worker process, few threads, quiet, no config file from the
	// working directory: the stand-in is Puma's defaults on one port.
	s.cmd = exec.Command(puma, "--quiet", "--threads", "1:4", "--environment", "test",
		"--bind", "tcp://"+addr, filepath.Join(dir, "config.ru"))
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	s.exited = exited
	go func() { _ = s.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/__rackparity/take")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("puma exited: %.2000s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = s.cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("puma did not listen on %s: %.2000s", addr, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Take returns and clears the readings of the requests Puma has received
// since the last Take, in arrival order.
func (s *StandIn) Take() ([]Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, err := http.Get(s.URL + "/__rackparity/take")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out []Reading
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("rackparity: bad readings: %v", err)
	}
	return out, nil
}

// Log returns what Puma wrote (bounded), for failure messages.
func (s *StandIn) Log() string { return s.log.String() }

// Close stops Puma.
func (s *StandIn) Close() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	os.RemoveAll(s.dir)
}
