package main

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// The bridge trusts only the daemon uid (and gid, when set) it is configured with: whatever
// else listens on the socket path is refused before HELLO, and requests are denied.
func TestPeerCredentialsAreChecked(t *testing.T) {
	uid, gid := float64(os.Geteuid()), float64(os.Getegid())
	cases := []struct {
		name     string
		settings map[string]interface{}
		trusted  bool
	}{
		{"default: the gateway's own uid", nil, true},
		{"expected uid", map[string]interface{}{"daemon_uid": uid}, true},
		{"expected uid and gid", map[string]interface{}{"daemon_uid": uid, "daemon_gid": gid}, true},
		{"another uid", map[string]interface{}{"daemon_uid": uid + 1}, false},
		{"another gid", map[string]interface{}{"daemon_gid": gid + 1}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := socketPath(t)
			p := newPeer(t, path).start()
			e := newEnv(t)
			b := e.bridge(path, c.settings)
			if c.trusted {
				waitReady(t, b.pool)
				mustPass(t)(b.modify(newRequest("x")))
				return
			}
			eventually(t, "the peer check fails", func() bool { return b.pool.lastErr.Load() != nil })
			if err := b.pool.ready(); err == nil || !strings.Contains(err.Error(), "peer check") {
				t.Fatalf("ready() = %v, want a peer check error", err)
			}
			mustDeny(t, 503)(b.modify(newRequest("x")))
			if p.hellos.Load() != 0 || p.requests.Load() != 0 {
				t.Errorf("an untrusted peer got %d hellos and %d requests", p.hellos.Load(), p.requests.Load())
			}
			found := false
			for _, l := range e.log.all() {
				found = found || strings.HasPrefix(l, "ERROR") && strings.Contains(l, "not filterd, refused")
			}
			if !found {
				t.Errorf("no clear ERROR line: %v", e.log.all())
			}
		})
	}
}

// Mode "probe" answers the readiness endpoint: 200 {"status":"ready"} only when filterd allows
// its route, the daemon's deny when it denies, error_status when there is no verdict.
func TestProbeMode(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	var mu sync.Mutex
	deny := false
	var bodies []int
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, r.BodyLength())
		if string(r.Route()) != "gateway.probe" || r.FiltersLength() != 0 || string(r.BodySha256Bytes()) != string(emptySHA256[:]) {
			t.Errorf("probe request: route %q, %d filters", r.Route(), r.FiltersLength())
		}
		if deny {
			pc.reply(&Response{ID: r.Id(), Status: 403, DenyBody: []byte(`{"status":403}`), DenyContentType: problemJSON})
			return
		}
		pc.reply(&Response{ID: r.Id(), Verdict: VerdictAllow})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"mode": "probe", "route_id": "gateway.probe", "filters": []interface{}{}})
	waitReady(t, b.pool)
	req := newRequest("a body the probe never reads")
	d := mustDeny(t, 200)(b.modify(req))
	if d.Error() != `{"status":"ready"}` || d.Encoding() != "application/json" {
		t.Errorf("ready answer %q %q", d.Error(), d.Encoding())
	}
	if rest := readAll(t, req.body); rest != "a body the probe never reads" {
		t.Errorf("the probe consumed the body: %q left", rest)
	}
	mu.Lock()
	deny = true
	mu.Unlock()
	if d := mustDeny(t, 403)(b.modify(newRequest(""))); d.Error() != `{"status":403}` {
		t.Errorf("deny answer %q", d.Error())
	}
	p.stop()
	eventually(t, "the daemon is seen down", func() bool { return b.pool.ready() != nil })
	mustDeny(t, 503)(b.modify(newRequest("")))
}

// After shadow_until the route enforces; the shadow period is announced at configure time,
// logged when it ends, and visible in Counters().
func TestShadowUntilExpiryEnforces(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		pc.reply(&Response{ID: r.Id(), Status: 401})
	}
	p.start()
	e := newEnv(t)
	until := time.Now().Add(300 * time.Millisecond).UTC().Truncate(time.Second).Add(time.Second)
	b := e.bridge(path, map[string]interface{}{"mode": "shadow", "route_id": "payments", "shadow_until": until.Format(time.RFC3339)})
	waitReady(t, b.pool)
	mustPass(t)(b.modify(newRequest("x")))
	if c := e.p.counters(); c["payments/shadow_active"] != 1 || c["payments/shadow_until_unix"] != uint64(until.Unix()) {
		t.Errorf("counters %v", c)
	}
	time.Sleep(time.Until(until))
	mustDeny(t, 401)(b.modify(newRequest("x")))
	if c := e.p.counters(); c["payments/shadow_active"] != 0 || c["payments/denied"] != 1 || c["payments/shadow_denied"] != 1 {
		t.Errorf("counters %v", c)
	}
	var warned, ended bool
	for _, l := range e.log.all() {
		warned = warned || strings.HasPrefix(l, "WARNING") && strings.Contains(l, "route=payments runs in SHADOW mode until "+until.Format(time.RFC3339))
		ended = ended || strings.HasPrefix(l, "WARNING") && strings.Contains(l, "route=payments shadow period ended")
	}
	if !warned || !ended {
		t.Errorf("shadow warnings missing (start %v, end %v): %v", warned, ended, e.log.all())
	}
}

// The start-up lines operators check for, at INFO, whichever order lura registers in.
func TestStartupLogLines(t *testing.T) {
	for _, loggerFirst := range []bool{true, false} {
		saved := defaultPlugin
		defaultPlugin = newPlugin()
		log := &recLogger{}
		register := func() {
			ModifierRegisterer.RegisterModifiers(func(string, func(map[string]interface{}) func(interface{}) (interface{}, error), bool, bool) {})
		}
		if loggerFirst {
			ModifierRegisterer.RegisterLogger(log)
			register()
		} else {
			register()
			ModifierRegisterer.RegisterLogger(log)
		}
		ModifierRegisterer.RegisterLogger(log) // a second logger does not repeat the line
		lines := log.all()
		defaultPlugin = saved
		if len(lines) != 1 || lines[0] != "INFO [PLUGIN: simpaisa/filter-bridge] loaded: request modifier registered" {
			t.Errorf("logger first %v: %q", loggerFirst, lines)
		}
	}
	e := newEnv(t)
	e.bridge("/run/filterd/filterd.sock", map[string]interface{}{"route_id": "payments.create", "deadline": "3ms"})
	want := "INFO [PLUGIN: simpaisa/filter-bridge] endpoint configured: route=payments.create mode=enforce " +
		"filters=merchant-auth,rate-limit socket=/run/filterd/filterd.sock deadline=3ms"
	if l := e.log.all(); len(l) == 0 || l[0] != want {
		t.Errorf("got %q\nwant %q", l, want)
	}
}

// A flood of denies and failures is logged as summaries: at most one line per interval and
// route, with the counts, which Counters() has as well.
func TestDenyFloodIsSummarised(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		if r.Id()%2 == 0 {
			pc.sendError(r.Id(), wire.ErrorCodeUnknownRoute)
			return
		}
		pc.reply(&Response{ID: r.Id(), Status: 401})
	}
	p.start()
	e := newEnv(t)
	e.p.summaryGap = 300 * time.Millisecond
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	before := len(e.log.all())
	for i := 0; i < 500; i++ {
		b.modify(newRequest("x"))
	}
	b.modify(panicky{newRequest("x")})
	time.Sleep(e.p.summaryGap)
	b.modify(newRequest("x")) // the first deny after the interval writes the next summary
	lines := e.log.all()[before:]
	if len(lines) != 2 {
		t.Fatalf("%d log lines for 501 denies, want a summary per interval: %q", len(lines), lines)
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, "route=payments since the last summary:") || !strings.Contains(last, "panics=1") ||
		!strings.Contains(last, "latest: daemon answered with error UnknownRoute") && !strings.Contains(last, "latest: panic: boom") ||
		!strings.HasPrefix(last, "WARNING") {
		t.Errorf("summary %q", last)
	}
	c := e.p.counters()
	if c["payments/denied"]+c["payments/failed"] != 501 || c["payments/panics"] != 1 {
		t.Errorf("counters %v", c)
	}
}

// A connection the daemon closed while it was idle (a restart, or an idle timeout) fails on
// write, before anything is delivered; the request is then sent on a fresh connection
// instead of being denied.
func TestConnectionClosedWhileIdleIsReplaced(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path).start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	mustPass(t)(b.modify(newRequest("x")))
	p.mu.Lock()
	idle := p.conns // every connection: all idle between requests
	for _, pc := range idle {
		pc.c.Close()
	}
	p.mu.Unlock()
	eventually(t, "the peer closed the idle connections", func() bool { return int(p.hangups.Load()) >= len(idle) })
	for i := 0; i < 5; i++ {
		mustPass(t)(b.modify(newRequest("x")))
	}
	if b.stats[cFailed].Load() != 0 || len(idle) == 0 || p.accepted.Load() <= int32(len(idle)) {
		t.Errorf("%d requests denied after the daemon dropped %d idle connections (%d accepted)", b.stats[cFailed].Load(), len(idle), p.accepted.Load())
	}
}

// The backend may close the body from another goroutine while it reads it; after Close the
// pooled buffer is gone from this reader, and a second Close is harmless.
func TestBodyReaderCloseWhileReading(t *testing.T) {
	for i := 0; i < 50; i++ {
		bb := getBody()
		if tooLarge, err := bb.fill(strings.NewReader(strings.Repeat("b", 10000)), 1<<20); err != nil || tooLarge {
			t.Fatal(tooLarge, err)
		}
		r := &bodyReader{buf: bb}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 100)
			for {
				if _, err := r.Read(buf); err != nil {
					if err != io.EOF && err != errBodyClosed {
						t.Error(err)
					}
					return
				}
			}
		}()
		r.Close()
		wg.Wait()
		if _, err := r.Read(make([]byte, 1)); err != errBodyClosed || r.Close() != nil {
			t.Fatal("read after close must fail; a second close must not")
		}
	}
	var nilReader bodyReader
	if _, err := nilReader.Read(nil); err != errBodyClosed {
		t.Error("a reader without a buffer must fail")
	}
	_ = context.Background()
}
