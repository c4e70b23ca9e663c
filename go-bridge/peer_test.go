package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// peer is a scripted stand-in for filterd on a real Unix socket. It speaks the protocol with
// the same generated code, and its hooks inject every failure the bridge must survive.
type peer struct {
	t    testing.TB
	path string
	ln   *net.UnixListener

	// onHello answers the Hello frame; nil answers with a HelloAck built from ack.
	onHello func(pc *peerConn, h *wire.Hello)
	ack     ackParams
	// onRequest handles one FilterRequest; nil answers allow.
	onRequest func(pc *peerConn, req *wire.FilterRequest)

	accepted atomic.Int32
	requests atomic.Int32
	hellos   atomic.Int32
	hangups  atomic.Int32 // connections that ended (read error or EOF on the peer's side)

	mu    sync.Mutex
	conns []*peerConn
	wg    sync.WaitGroup
}

type ackParams struct {
	version     uint16
	maxFrame    uint32
	maxInFlight uint32
}

type peerConn struct {
	p   *peer
	c   net.Conn
	wmu sync.Mutex
	enc *encoder
}

// socketPath returns a fresh path short enough for sun_path.
func socketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "fb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "d.sock")
}

func newPeer(t testing.TB, path string) *peer {
	p := &peer{t: t, path: path, ack: ackParams{version: 1, maxFrame: 1 << 20, maxInFlight: 256}}
	return p
}

// start listens and serves; configure the hooks before calling it.
func (p *peer) start() *peer {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p.path, Net: "unix"})
	if err != nil {
		p.t.Fatal(err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop()
	p.t.Cleanup(p.stop)
	return p
}

// stop closes the listener and every connection, like a daemon that exits.
func (p *peer) stop() {
	if p.ln != nil {
		p.ln.Close()
	}
	p.mu.Lock()
	for _, pc := range p.conns {
		pc.c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *peer) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		pc := &peerConn{p: p, c: c, enc: newEncoder()}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(1)
		go pc.serve()
	}
}

func (pc *peerConn) serve() {
	defer pc.p.wg.Done()
	defer pc.c.Close()
	for {
		buf, err := readPeerFrame(pc.c)
		if err != nil {
			pc.p.hangups.Add(1)
			return
		}
		f := wire.GetRootAsFrame(buf, 0)
		var tab flatbuffers.Table
		if !f.Body(&tab) {
			return
		}
		switch f.BodyType() {
		case wire.BodyHello:
			pc.p.hellos.Add(1)
			h := new(wire.Hello)
			h.Init(tab.Bytes, tab.Pos)
			if pc.p.onHello != nil {
				pc.p.onHello(pc, h)
				continue
			}
			pc.sendAck(pc.p.ack)
		case wire.BodyFilterRequest:
			pc.p.requests.Add(1)
			r := new(wire.FilterRequest)
			r.Init(tab.Bytes, tab.Pos)
			if pc.p.onRequest != nil {
				pc.p.onRequest(pc, r)
				continue
			}
			pc.reply(&Response{ID: r.Id(), Verdict: VerdictAllow})
		default:
			return
		}
	}
}

func readPeerFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 32<<20 {
		return nil, errors.New("peer: frame too large")
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

func (pc *peerConn) sendAck(a ackParams) {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	b, err := pc.enc.HelloAck(a.version, a.maxFrame, 0, "test-peer", a.maxInFlight)
	if err != nil {
		panic(err)
	}
	pc.c.Write(b)
}

func (pc *peerConn) reply(r *Response) {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	b, err := pc.enc.FilterResponse(r)
	if err != nil {
		panic(err)
	}
	pc.c.Write(b)
}

func (pc *peerConn) sendError(id uint64, code wire.ErrorCode) {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	b, err := pc.enc.Error(id, uint16(code), "test error")
	if err != nil {
		panic(err)
	}
	pc.c.Write(b)
}

func (pc *peerConn) sendRaw(b []byte) {
	pc.wmu.Lock()
	defer pc.wmu.Unlock()
	pc.c.Write(b)
}

// testEnv is a plugin instance with its own context, logger and counters.
type testEnv struct {
	t      testing.TB
	p      *pluginState
	ctx    context.Context
	cancel context.CancelFunc
	log    *recLogger
}

func newEnv(t testing.TB) *testEnv {
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEnv{t: t, p: newPlugin(), ctx: ctx, cancel: cancel, log: &recLogger{}}
	e.p.ctx = ctx
	e.p.logger.Store(&loggerBox{e.log})
	t.Cleanup(func() {
		cancel()
	})
	return e
}

// bridge builds an endpoint modifier from settings (merged over sensible test defaults).
func (e *testEnv) bridge(path string, settings map[string]interface{}) *bridge {
	m := map[string]interface{}{
		"socket_path": path, "route_id": "payments", "filters": []interface{}{"merchant-auth", "rate-limit"},
	}
	for k, v := range settings {
		m[k] = v
	}
	if settings["mode"] == "shadow" && settings["shadow_until"] == nil {
		m["shadow_until"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	}
	cfg, err := ParseConfig(map[string]interface{}{"name": []interface{}{Name}, Name: m})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, ok := settings["deadline"]; !ok {
		// Tests that are not about the deadline get a long one: on a loaded 2-core machine
		// under -race a scheduling hiccup can exceed any deadline below 5 ms, and a test
		// about header handling must not turn into a (correct, but unrelated) timeout deny.
		cfg.Deadline = 2 * time.Second
	}
	return e.p.newBridge(cfg)
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitReady polls until the bridge's connection completed HELLO (or fails the test).
func waitReady(t testing.TB, d *pool) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for d.ready() != nil {
		if time.Now().After(end) {
			t.Fatalf("connection never became ready: %v", d.ready())
		}
		time.Sleep(time.Millisecond)
	}
}

// recLogger records every log line so tests can check what logs must never contain.
type recLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recLogger) add(level string, v ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+fmt.Sprint(v...))
}
func (l *recLogger) Debug(v ...interface{})    { l.add("DEBUG", v...) }
func (l *recLogger) Info(v ...interface{})     { l.add("INFO", v...) }
func (l *recLogger) Warning(v ...interface{})  { l.add("WARNING", v...) }
func (l *recLogger) Error(v ...interface{})    { l.add("ERROR", v...) }
func (l *recLogger) Critical(v ...interface{}) { l.add("CRITICAL", v...) }
func (l *recLogger) Fatal(v ...interface{})    { l.add("FATAL", v...) }

func (l *recLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

const helloTimeout = 250 * time.Millisecond

// ready checks that the daemon answers: an idle connection is still open, or a new one
// completes the HELLO exchange (nil), or says why not.
func (p *pool) ready() error {
	c, f := p.get(p.ctx, time.Now().Add(helloTimeout))
	if f == "" && !c.alive() {
		p.put(c, false)
		p.flush()
		c, f = p.get(p.ctx, time.Now().Add(helloTimeout))
	}
	if f == "" {
		p.put(c, true)
		return nil
	} else if e := p.lastErr.Load(); e != nil {
		return fmt.Errorf("filterd at %s not connected: %s", p.key.path, *e)
	}
	return fmt.Errorf("filterd at %s: %s", p.key.path, f)
}

// alive reports that the daemon has not closed an idle connection (peeking, without blocking).
func (c *conn) alive() bool {
	raw, err := c.c.(*net.UnixConn).SyscallConn()
	n := -1
	if err == nil {
		raw.Control(func(fd uintptr) {
			n, _, err = syscall.Recvfrom(int(fd), c.buf[:1], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		})
	}
	return n < 0 && errors.Is(err, syscall.EAGAIN)
}

func (p *pluginState) ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pools) == 0 {
		return fmt.Errorf("%s: no endpoint is configured with the plugin", Name)
	}
	for _, c := range p.pools {
		if err := c.ready(); err != nil {
			return err
		}
	}
	return nil
}
