// Command demo-backend is the tiny HTTP backend behind the gateway harness in the demo stack and the
// e2e tests. Every request (except its own /__ paths) is counted and answered with a JSON echo of what
// it received: method, path, raw query, headers, body length and body SHA-256. The counters are what
// the e2e tests assert on ("no unsigned request ever reached the backend").
//
//	demo-backend -listen 127.0.0.1:0 -addr-file F
//	GET /__counts  -> {"total": N, "by_path": {"/v1/pay": n, ...}}
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

type counters struct {
	mu     sync.Mutex
	total  int64
	byPath map[string]int64
}

type echo struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	RawQuery   string              `json:"raw_query"`
	Headers    map[string][]string `json:"headers"`
	BodyBytes  int                 `json:"body_bytes"`
	BodySHA256 string              `json:"body_sha256"`
	Seq        int64               `json:"seq"`
}

const maxBody = 1 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("addr-file", "", "write the bound address here once listening")
	flag.Parse()

	c := &counters{byPath: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/__counts", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		out := map[string]interface{}{"total": c.total, "by_path": c.byPath}
		b, _ := json.Marshal(out)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/__") {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		sum := sha256.Sum256(body)
		c.mu.Lock()
		c.total++
		c.byPath[r.URL.Path]++
		seq := c.total
		c.mu.Unlock()
		b, _ := json.Marshal(echo{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Headers: r.Header,
			BodyBytes: len(body), BodySHA256: hex.EncodeToString(sum[:]), Seq: seq,
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("demo-backend: %v", err)
	}
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
			log.Fatalf("demo-backend: %v", err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatalf("demo-backend: %v", err)
		}
	}
	fmt.Printf("demo-backend: listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("demo-backend: %v", err)
	}
}
