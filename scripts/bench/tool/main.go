// Command tool is the load benchmark's helper (run.sh drives it):
//
//	tool ports N                       print N free 127.0.0.1 ports
//	tool keys -dir D [-scale-seed S]   write D/keys.json (and token files)
//	tool rewrite -dst F -every 3s -n 6 SRC...   atomically replace F with each SRC in turn
//	tool report -dir D                 median table from D/results/*.txt
//
// Benchmark tokens are random, written to files with mode 0600 and never
// printed.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/matcher"
	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/scripts/bench/keysgen"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: tool ports|keys|rewrite|report ...")
	}
	var err error
	switch os.Args[1] {
	case "ports":
		err = ports(os.Args[2:])
	case "keys":
		err = keys(os.Args[2:])
	case "rewrite":
		err = rewrite(os.Args[2:])
	case "report":
		err = report(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "tool:", msg)
	os.Exit(1)
}

func ports(args []string) error {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return nil
}

// token returns the token stored in dir/name, creating a random one.
func token(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	t := "bench-" + hex.EncodeToString(b[:])
	return t, os.WriteFile(p, []byte(t), 0o600)
}

// keys writes the bench keys file: the scenario keys, and with -scale the
// 1,000 generated keys and 100,000 tokens around them.
func keys(args []string) error {
	fs := flag.NewFlagSet("keys", flag.ExitOnError)
	dir := fs.String("dir", ".", "directory for the keys file and token files")
	out := fs.String("out", "keys.json", "file name in dir")
	scaleSeed := fs.Uint64("scale-seed", 0, "add 1,000 keys and 100,000 tokens from this seed (0: none)")
	_ = fs.Parse(args)
	var toks [3]string
	for i, n := range []string{"token-25", "token-all", "token-substitute"} {
		t, err := token(*dir, n)
		if err != nil {
			return err
		}
		toks[i] = t
	}
	if _, err := token(*dir, "canvas-token"); err != nil {
		return err
	}
	opt := keysgen.Options{Extra: []keysgen.Key{
		{ID: "bench-25", Scopes: keysgen.VendorScopes, Tokens: toks[0:1]},
		{ID: "bench-all", Scopes: matcher.Catalogue(), Tokens: toks[1:2]},
		{ID: "bench-substitute", Scopes: keysgen.VendorScopes, UpstreamToken: "{env.BENCH_CANVAS_TOKEN}", Tokens: toks[2:3]},
	}}
	if *scaleSeed != 0 {
		opt.Keys, opt.Tokens, opt.Seed = 1000, 100_000, *scaleSeed
	}
	f, err := os.CreateTemp(*dir, ".keys-*")
	if err != nil {
		return err
	}
	st, err := keysgen.Write(f, opt)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(*dir, *out)); err != nil {
		return err
	}
	fmt.Printf("%s: %d developer keys, %d tokens (%d with their own scopes), %.1f MiB\n",
		*out, st.Keys, st.Tokens, st.SubsetTokens, float64(st.Bytes)/(1<<20))
	return nil
}

// rewrite replaces dst with each source in turn by copy + atomic rename.
func rewrite(args []string) error {
	fs := flag.NewFlagSet("rewrite", flag.ExitOnError)
	dst := fs.String("dst", "", "file to replace")
	every := fs.Duration("every", 3*time.Second, "interval")
	n := fs.Int("n", 6, "number of rewrites")
	delay := fs.Duration("delay", time.Second, "wait before the first")
	_ = fs.Parse(args)
	srcs := fs.Args()
	if *dst == "" || len(srcs) == 0 {
		return fmt.Errorf("rewrite: -dst and sources are required")
	}
	time.Sleep(*delay)
	for i := range *n {
		data, err := os.ReadFile(srcs[i%len(srcs)])
		if err != nil {
			return err
		}
		tmp := *dst + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, *dst); err != nil {
			return err
		}
		fmt.Printf("rewrite %d: %s -> %s at %s\n", i+1, filepath.Base(srcs[i%len(srcs)]), filepath.Base(*dst), time.Now().Format("15:04:05.000"))
		if i < *n-1 {
			time.Sleep(*every)
		}
	}
	return nil
}

type result struct {
	rps                       float64
	p50, p90, p99             float64 // µs
	non2xx, sockErr, requests int64
}

// parseResult reads the RESULT line the wrk Lua done hook writes.
func parseResult(path string) (result, error) {
	f, err := os.Open(path)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "RESULT ")
		if !ok {
			continue
		}
		kv := map[string]float64{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			kv[k], _ = strconv.ParseFloat(v, 64)
		}
		return result{
			rps: kv["requests"] / (kv["duration_us"] / 1e6),
			p50: kv["p50_us"], p90: kv["p90_us"], p99: kv["p99_us"],
			non2xx:   int64(kv["non2xx"]),
			sockErr:  int64(kv["connect"] + kv["read"] + kv["write"] + kv["timeout"]),
			requests: int64(kv["requests"]),
		}, nil
	}
	return result{}, fmt.Errorf("%s: no RESULT line", path)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var scenarios = []struct{ id, desc string }{
	{"A", "plain reverse_proxy of the same GET (same token header)"},
	{"B", "gate, 25-scope key (GET)"},
	{"C", "gate, key with all 1,311 catalogue scopes (GET)"},
	{"D", "gate, include filtering from a JSON POST body"},
	{"E", "gate, credential substitution (GET)"},
	{"F", "forward_auth to an authz service on our matcher (GET)"},
	{"P", "plain reverse_proxy, the same POST as D (reference)"},
}

func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	dir := fs.String("dir", ".", "directory with results/")
	_ = fs.Parse(args)
	med := map[string]result{}
	rounds := map[string][]float64{}
	var totalNon2xx, totalSock int64
	for _, sc := range scenarios {
		files, _ := filepath.Glob(filepath.Join(*dir, "results", sc.id+".*.txt"))
		slices.Sort(files)
		var rps, p50, p90, p99 []float64
		for _, f := range files {
			r, err := parseResult(f)
			if err != nil {
				return err
			}
			rps, p50, p90, p99 = append(rps, r.rps), append(p50, r.p50), append(p90, r.p90), append(p99, r.p99)
			totalNon2xx += r.non2xx
			totalSock += r.sockErr
		}
		if len(files) == 0 {
			continue
		}
		rounds[sc.id] = rps
		med[sc.id] = result{rps: median(rps), p50: median(p50), p90: median(p90), p99: median(p99)}
	}
	a, ok := med["A"]
	if !ok {
		return fmt.Errorf("no results for A")
	}
	fmt.Println("| | scenario | RPS | p50 | p99 | RPS / A | p99 − A |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, sc := range scenarios {
		r, ok := med[sc.id]
		if !ok {
			continue
		}
		fmt.Printf("| %s | %s | %.0f | %s | %s | %.3f | %s |\n", sc.id, sc.desc, r.rps, us(r.p50), us(r.p99), r.rps/a.rps, signedUS(r.p99-a.p99))
	}
	fmt.Println()
	fmt.Println("RPS per round (interleaved A B C D E F P):")
	for _, sc := range scenarios {
		if rs, ok := rounds[sc.id]; ok {
			parts := make([]string, len(rs))
			for i, v := range rs {
				parts[i] = fmt.Sprintf("%.0f", v)
			}
			fmt.Printf("  %s: %s\n", sc.id, strings.Join(parts, " "))
		}
	}
	// Ratios within each round, where the two runs were seconds apart: a
	// view of the noise next to the ratio of medians above.
	fmt.Println("\nRPS ratios within each round (median [min–max]):")
	for _, pair := range [][2]string{{"B", "A"}, {"C", "B"}, {"D", "A"}, {"D", "P"}, {"E", "A"}, {"B", "F"}} {
		x, y := rounds[pair[0]], rounds[pair[1]]
		if len(x) == 0 || len(x) != len(y) {
			continue
		}
		ratios := make([]float64, len(x))
		for i := range x {
			ratios[i] = x[i] / y[i]
		}
		fmt.Printf("  %s/%s: %.3f [%.3f–%.3f]\n", pair[0], pair[1], median(ratios), slices.Min(ratios), slices.Max(ratios))
	}
	fmt.Printf("\nnon-2xx responses: %d, socket errors: %d (over all rounds)\n", totalNon2xx, totalSock)
	if err := reportCPU(*dir); err != nil {
		return err
	}
	fmt.Println()
	check := func(name string, ok bool, got string) {
		mark := "MET"
		if !ok {
			mark = "MISSED"
		}
		fmt.Printf("- %-36s %-7s %s\n", name, mark, got)
	}
	fmt.Println("Targets (medians of this run):")
	if b, ok := med["B"]; ok {
		check("B/A RPS ≥ 0.97", b.rps/a.rps >= 0.97, fmt.Sprintf("%.3f", b.rps/a.rps))
		check("B p99 − A p99 ≤ 100 µs", b.p99-a.p99 <= 100, signedUS(b.p99-a.p99))
		if c, ok := med["C"]; ok {
			check("C within 2 % of B (RPS)", math.Abs(c.rps/b.rps-1) <= 0.02, fmt.Sprintf("C/B %.3f", c.rps/b.rps))
		}
		if f, ok := med["F"]; ok {
			check("B/F RPS ≥ 2", b.rps/f.rps >= 2, fmt.Sprintf("%.2f", b.rps/f.rps))
		}
	}
	if d, ok := med["D"]; ok {
		check("D/A RPS ≥ 0.90", d.rps/a.rps >= 0.90, fmt.Sprintf("%.3f", d.rps/a.rps))
		if p, ok := med["P"]; ok {
			fmt.Printf("  (D against the same POST without the gate, D/P: %.3f)\n", d.rps/p.rps)
		}
	}
	return nil
}

// reportCPU prints the servers' CPU time per request, from the .cpu file
// run.sh writes next to each wrk result. Unlike RPS on saturated shared
// cores, CPU per request does not depend on what else had the cores.
func reportCPU(dir string) error {
	type perReq struct{ caddy, authz, upstream float64 } // µs per request
	runs := map[string][]perReq{}
	for _, sc := range scenarios {
		files, _ := filepath.Glob(filepath.Join(dir, "results", sc.id+".*.cpu"))
		slices.Sort(files)
		for _, f := range files {
			res, err := parseResult(strings.TrimSuffix(f, ".cpu") + ".txt")
			if err != nil {
				return err
			}
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			kv := map[string]float64{}
			for _, field := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(data)), "CPU ")) {
				k, v, _ := strings.Cut(field, "=")
				kv[k], _ = strconv.ParseFloat(v, 64)
			}
			if kv["hz"] == 0 || res.requests == 0 {
				return fmt.Errorf("%s: no CPU figures or no requests", f)
			}
			per := func(ticks float64) float64 { return ticks / kv["hz"] * 1e6 / float64(res.requests) }
			runs[sc.id] = append(runs[sc.id], perReq{per(kv["caddy"]), per(kv["authz"]), per(kv["upstream"])})
		}
	}
	if len(runs["A"]) == 0 {
		return nil // an older results directory
	}
	col := func(id string, f func(perReq) float64) float64 {
		var xs []float64
		for _, r := range runs[id] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	server := func(r perReq) float64 { return r.caddy + r.authz }
	a := col("A", server)
	fmt.Println("\nServer CPU per request (user+sys from /proc, median over rounds; 10 ms clock ticks):")
	fmt.Println("| | Caddy | authz service | Caddy + authz | / A | upstream |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, sc := range scenarios {
		if len(runs[sc.id]) == 0 {
			continue
		}
		s := col(sc.id, server)
		fmt.Printf("| %s | %.1f µs | %.1f µs | %.1f µs | %.3f | %.1f µs |\n", sc.id,
			col(sc.id, func(r perReq) float64 { return r.caddy }), col(sc.id, func(r perReq) float64 { return r.authz }),
			s, s/a, col(sc.id, func(r perReq) float64 { return r.upstream }))
	}
	// Differences within each round: the two runs were seconds apart.
	fmt.Println("\nWithin each round (median [min–max]):")
	for _, pair := range [][2]string{{"B", "A"}, {"C", "A"}, {"D", "P"}, {"E", "A"}, {"F", "A"}} {
		x, y := runs[pair[0]], runs[pair[1]]
		if len(x) == 0 || len(x) != len(y) {
			continue
		}
		diffs := make([]float64, len(x))
		for i := range x {
			diffs[i] = server(x[i]) - server(y[i])
		}
		fmt.Printf("  %s − %s: %+.1f µs [%+.1f – %+.1f] of server CPU per request\n", pair[0], pair[1], median(diffs), slices.Min(diffs), slices.Max(diffs))
	}
	if len(runs["B"]) > 0 && len(runs["F"]) > 0 {
		fmt.Printf("  F / B: %.2f (server CPU per request through forward_auth, to the gate's)\n", col("F", server)/col("B", server))
	}
	return nil
}

func us(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func signedUS(v float64) string {
	if v >= 0 {
		return "+" + us(v)
	}
	return "−" + us(-v)
}
