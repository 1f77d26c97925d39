package rackparity

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Oracle is one long-running ruby process that reads requests with Rack
// and ActionDispatch. It is safe for concurrent use (requests are
// serialised) and for any number of requests; if the process dies or
// stops answering it is restarted on the next Read.
type Oracle struct {
	mu      sync.Mutex
	dir     string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *bufio.Reader
	stderr  *limitedWriter
	timeout time.Duration
	closed  bool
}

// StartOracle starts the ruby process.
func StartOracle() (*Oracle, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	dir, err := extract()
	if err != nil {
		return nil, err
	}
	o := &Oracle{dir: dir, timeout: 20 * time.Second}
	if err := o.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return o, nil
}

func (o *Oracle) start() error {
	cmd := exec.Command("ruby", filepath.Join(o.dir, "oracle.rb"))
	cmd.Dir = o.dir
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	o.stderr = &limitedWriter{buf: &bytes.Buffer{}, max: 4096}
	cmd.Stderr = o.stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	o.cmd, o.stdin, o.stdout = cmd, in, bufio.NewReaderSize(out, 64<<10)
	return nil
}

func (o *Oracle) stop() {
	if o.cmd == nil {
		return
	}
	_ = o.stdin.Close()
	_ = o.cmd.Process.Kill()
	_ = o.cmd.Wait()
	o.cmd = nil
}

// Close stops the process.
func (o *Oracle) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stop()
	o.closed = true
	os.RemoveAll(o.dir)
}

// Head renders the request line and header lines of r as sent on the wire,
// adding Host and Content-Length when r does not set them.
func (r Request) Head() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", r.Method, r.Target)
	hasHost, hasLength := false, false
	for _, h := range r.Header {
		switch strings.ToLower(h[0]) {
		case "host":
			hasHost = true
		case "content-length", "transfer-encoding":
			hasLength = true
		}
	}
	if !hasHost {
		b.WriteString("Host: canvas.test\r\n")
	}
	for _, h := range r.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	if !hasLength && len(r.Body) > 0 {
		b.WriteString("Content-Length: " + strconv.Itoa(len(r.Body)) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// Read asks Rack what it reads from r. An error means the oracle itself
// failed (not a refusal by Rack, which is a Reading with Raised set).
func (o *Oracle) Read(r Request) (Reading, error) {
	msg, err := json.Marshal(struct {
		Head []byte `json:"head"`
		Body []byte `json:"body"`
	}{r.Head(), r.Body})
	if err != nil {
		return Reading{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return Reading{}, errors.New("rackparity: oracle closed")
	}
	if o.cmd == nil {
		if err := o.start(); err != nil {
			return Reading{}, err
		}
	}
	answer, err := o.exchange(msg)
	if err != nil {
		detail := o.stderr.String()
		o.stop()
		return Reading{}, fmt.Errorf("rackparity: oracle failed: %v; stderr: %.1000s", err, detail)
	}
	var rd struct {
		Reading
		Internal string `json:"internal"`
	}
	if err := json.Unmarshal(answer, &rd); err != nil {
		return Reading{}, fmt.Errorf("rackparity: bad answer: %v", err)
	}
	if rd.Internal != "" {
		return Reading{}, fmt.Errorf("rackparity: the oracle's own code failed: %s: %s", rd.Internal, rd.Message)
	}
	return rd.Reading, nil
}

func (o *Oracle) exchange(msg []byte) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var size [4]byte
		binary.BigEndian.PutUint32(size[:], uint32(len(msg)))
		if _, err := o.stdin.Write(append(size[:], msg...)); err != nil {
			done <- result{nil, err}
			return
		}
		if _, err := io.ReadFull(o.stdout, size[:]); err != nil {
			done <- result{nil, err}
			return
		}
		b := make([]byte, binary.BigEndian.Uint32(size[:]))
		_, err := io.ReadFull(o.stdout, b)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(o.timeout):
		_ = o.cmd.Process.Kill() // unblocks the goroutine
		<-done
		return nil, fmt.Errorf("no answer within %s", o.timeout)
	}
}

type limitedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.buf.Len(); room > 0 {
		if len(p) > room {
			w.buf.Write(p[:room])
		} else {
			w.buf.Write(p)
		}
	}
	return len(p), nil
}

func (w *limitedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
