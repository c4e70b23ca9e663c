package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// fakeRequest stands for lura's *proxy.requestWrapper (v2.12.1): the same fields and getters.
type fakeRequest struct {
	ctx     context.Context
	method  string
	url     *url.URL
	query   url.Values
	path    string
	body    io.ReadCloser
	params  map[string]string
	headers map[string][]string
}

func (r *fakeRequest) Context() context.Context     { return r.ctx }
func (r *fakeRequest) Method() string               { return r.method }
func (r *fakeRequest) URL() *url.URL                { return r.url }
func (r *fakeRequest) Query() url.Values            { return r.query }
func (r *fakeRequest) Path() string                 { return r.path }
func (r *fakeRequest) Body() io.ReadCloser          { return r.body }
func (r *fakeRequest) Params() map[string]string    { return r.params }
func (r *fakeRequest) Headers() map[string][]string { return r.headers }

const secretToken = "tok_live_SECRET_4242"

const problemJSON = "application/problem+json"

func newRequest(body string) *fakeRequest {
	return &fakeRequest{
		ctx:    context.Background(),
		method: "POST",
		path:   "/v1/payments/m-17",
		query:  url.Values{"b": {"2", "3"}, "a": {"x y"}},
		body:   io.NopCloser(strings.NewReader(body)),
		params: map[string]string{"Merchant": "m-17"},
		headers: map[string][]string{
			"Authorization":   {"Bearer " + secretToken},
			"X-Forwarded-For": {"203.0.113.9"},
			"X-Strip-Me":      {"internal"},
			"Content-Type":    {"application/json"},
		},
	}
}

// The interfaces lura v2.12.1's gin router reads from an error (router/gin/endpoint.go).
type responseError interface {
	error
	StatusCode() int
}
type headerResponseError interface {
	responseError
	Headers() map[string][]string
}
type encodedResponseError interface {
	responseError
	Encoding() string
}

// mustDeny(t, status)(b.modify(req)) asserts a deny with that status.
func mustDeny(t *testing.T, status int) func(interface{}, error) *DenyError {
	t.Helper()
	return func(out interface{}, err error) *DenyError {
		t.Helper()
		if err == nil {
			t.Fatalf("request passed (out=%T), want a deny with status %d", out, status)
		}
		if out != nil {
			t.Fatalf("a deny must not return a request, got %T", out)
		}
		var d *DenyError
		if !errors.As(err, &d) {
			t.Fatalf("error %T is not a DenyError", err)
		}
		re, ok := err.(headerResponseError)
		if !ok {
			t.Fatalf("deny does not implement StatusCode/Headers")
		}
		if _, ok := err.(encodedResponseError); !ok {
			t.Fatalf("deny does not implement Encoding")
		}
		if re.StatusCode() != status {
			t.Fatalf("status = %d, want %d", re.StatusCode(), status)
		}
		return d
	}
}

// mustPass(t)(b.modify(req)) asserts the request passed and returns it.
func mustPass(t *testing.T) func(interface{}, error) *request {
	t.Helper()
	return func(out interface{}, err error) *request {
		t.Helper()
		if err != nil {
			t.Fatalf("request denied: %v", err)
		}
		r, ok := out.(*request)
		if !ok {
			t.Fatalf("modifier returned %T, want *request", out)
		}
		return r
	}
}

func readAll(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	if rc == nil {
		return ""
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAllowSendsTheRequestAndAppliesHeaderChanges(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	var got struct {
		sync.Mutex
		route, method, pth, ip, digest string
		bodyLen                        int
		filters                        []string
		query, params, headers         []string
		budget                         uint32
	}
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		got.Lock()
		got.route, got.method, got.pth, got.ip, got.digest = string(r.Route()), string(r.Method()), string(r.Path()), string(r.ClientIp()), string(r.BodySha256Bytes())
		got.bodyLen = r.BodyLength()
		got.budget = r.BudgetUs()
		for i := 0; i < r.FiltersLength(); i++ {
			got.filters = append(got.filters, string(r.Filters(i)))
		}
		var q wire.QueryPair
		for i := 0; i < r.QueryLength(); i++ {
			r.Query(&q, i)
			got.query = append(got.query, string(q.Name())+"="+string(q.Value()))
		}
		for i := 0; i < r.PathParamsLength(); i++ {
			r.PathParams(&q, i)
			got.params = append(got.params, string(q.Name())+"="+string(q.Value()))
		}
		var h wire.Header
		for i := 0; i < r.HeadersLength(); i++ {
			r.Headers(&h, i)
			for j := 0; j < h.ValuesLength(); j++ {
				got.headers = append(got.headers, string(h.Name())+": "+string(h.Values(j)))
			}
		}
		got.Unlock()
		pc.reply(&Response{ID: r.Id(), Verdict: VerdictAllow,
			RemoveHeaders: []string{"x-strip-me", "X-Merchant-Id"},
			SetHeaders:    []Header{{Name: "x-merchant-id", Values: []string{"m-17"}}, {Name: "X-Risk", Values: []string{"low", "checked"}}},
		})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)

	req := newRequest(`{"amount":100}`)
	forged := []string{"forged"}
	req.headers["X-Merchant-Id"] = forged
	out, err := b.modify(req)
	r := mustPass(t)(out, err)

	got.Lock()
	defer got.Unlock()
	if got.route != "payments" || got.method != "POST" || got.pth != "/v1/payments/m-17" || got.ip != "203.0.113.9" {
		t.Errorf("daemon saw route=%q method=%q path=%q ip=%q", got.route, got.method, got.pth, got.ip)
	}
	if want := sha256.Sum256([]byte(`{"amount":100}`)); got.digest != string(want[:]) || got.bodyLen != 0 {
		t.Errorf("daemon saw a %d-byte body and digest %x; want only the digest %x", got.bodyLen, got.digest, want)
	}
	if !slices.Equal(got.filters, []string{"merchant-auth", "rate-limit"}) {
		t.Errorf("filters = %v", got.filters)
	}
	if !slices.Equal(got.query, []string{"a=x y", "b=2", "b=3"}) {
		t.Errorf("query = %v", got.query)
	}
	if !slices.Equal(got.params, []string{"Merchant=m-17"}) {
		t.Errorf("path params = %v", got.params)
	}
	if !slices.Contains(got.headers, "Authorization: Bearer "+secretToken) || !slices.Contains(got.headers, "X-Strip-Me: internal") {
		t.Errorf("headers = %v", got.headers)
	}
	if got.budget < 1_000_000 || got.budget > 2_000_000 { // remaining part of the 2 s test deadline
		t.Errorf("budget_us = %d, want the remaining deadline in µs", got.budget)
	}

	h := r.Headers()
	if _, ok := h["X-Strip-Me"]; ok {
		t.Error("removed header still present")
	}
	if v := h["X-Merchant-Id"]; !slices.Equal(v, []string{"m-17"}) {
		t.Errorf("X-Merchant-Id = %v, want the daemon's value replacing the forged one", v)
	}
	if v := h["X-Risk"]; !slices.Equal(v, []string{"low", "checked"}) {
		t.Errorf("X-Risk = %v", v)
	}
	if v := h["Authorization"]; len(v) != 1 {
		t.Errorf("untouched header lost: %v", v)
	}
	if forged[0] != "forged" {
		t.Error("a value slice of lura's header map was written to")
	}
	if body := readAll(t, r.Body()); body != `{"amount":100}` {
		t.Errorf("backend body = %q", body)
	}
	if r.Method() != "POST" || r.Path() != "/v1/payments/m-17" || r.Params()["Merchant"] != "m-17" || r.Query().Get("a") != "x y" || r.Context() == nil || r.URL() != nil {
		t.Error("request getters do not carry the original request")
	}
	if b.stats[cAllowed].Load() != 1 {
		t.Errorf("Allowed = %d", b.stats[cAllowed].Load())
	}
	if err := r.Body().Close(); err != nil {
		t.Error(err)
	}
	if _, err := r.Body().Read(make([]byte, 1)); err != errBodyClosed {
		t.Errorf("read after close: %v, want errBodyClosed (the buffer is back in the pool)", err)
	}
}

func TestAllowWithoutBodyKeepsNoBody(t *testing.T) {
	path := socketPath(t)
	newPeer(t, path).start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	req := newRequest("")
	req.body = nil
	req.url = &url.URL{Path: "/a b/c", RawPath: "/a%20b/c"}
	r := mustPass(t)(b.modify(req))
	if r.Body() != nil {
		t.Error("a request without a body got one")
	}
	req2 := newRequest("")
	r2 := mustPass(t)(b.modify(req2))
	if r2.Body() == nil || readAll(t, r2.Body()) != "" {
		t.Error("an empty body must stay empty")
	}
}

func TestDenyCarriesTheDaemonsStatusHeadersAndBody(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		pc.reply(&Response{ID: r.Id(), Verdict: VerdictDeny, Status: 429,
			DenyHeaders:     []Header{{Name: "retry-after", Values: []string{"7"}}},
			DenyBody:        []byte(`{"title":"Too Many Requests","status":429}`),
			DenyContentType: "application/problem+json"})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	out, err := b.modify(newRequest("x"))
	d := mustDeny(t, 429)(out, err)
	if !slices.Equal(d.Headers()["Retry-After"], []string{"7"}) {
		t.Errorf("headers = %v", d.Headers())
	}
	if d.Error() != `{"title":"Too Many Requests","status":429}` || d.Encoding() != "application/problem+json" {
		t.Errorf("body %q encoding %q", d.Error(), d.Encoding())
	}
	if b.stats[cDenied].Load() != 1 {
		t.Errorf("Denied = %d", b.stats[cDenied].Load())
	}
}

func TestUnknownVerdictAndNonErrorStatusDenyWithErrorStatus(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		// Verdict 7 is not Allow: a deny. Status 200 cannot be a deny status.
		pc.reply(&Response{ID: r.Id(), Verdict: 7, Status: 200})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"error_status": float64(502)})
	waitReady(t, b.pool)
	mustDeny(t, 502)(b.modify(newRequest("x")))
}

func TestNoDaemonFailsFastWithErrorStatus(t *testing.T) {
	e := newEnv(t)
	b := e.bridge(socketPath(t), nil) // nothing listens there
	c, f := b.pool.roundTrip(context.Background(), &filterRequest{Route: "r"}, time.Now().Add(time.Second))
	if c != nil || f != errDown {
		t.Fatalf("roundTrip = %v, %v; want errDown without waiting for the deadline", c, f)
	}
	mustDeny(t, 503)(b.modify(newRequest("x")))
	if b.stats[cFailed].Load() != 1 {
		t.Errorf("Failed = %d", b.stats[cFailed].Load())
	}
	if err := b.pool.ready(); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("ready() = %v", err)
	}
}

func TestRefusedConnectionDenies(t *testing.T) {
	path := socketPath(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the socket file stays; connecting to it is refused
	e := newEnv(t)
	b := e.bridge(path, nil)
	if err := b.pool.ready(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("ready() = %v, want connection refused", err)
	}
	mustDeny(t, 503)(b.modify(newRequest("x")))
}

func TestSlowReplyTimesOutAndLateReplyIsDropped(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	release := make(chan struct{})
	var n int
	var mu sync.Mutex
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			id := r.Id()
			go func() { <-release; pc.reply(&Response{ID: id, Verdict: VerdictAllow}) }()
			return
		}
		pc.reply(&Response{ID: r.Id(), Verdict: VerdictAllow, SetHeaders: []Header{{Name: "X-Echo", Values: []string{string(r.Route())}}}})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"deadline": "1ms"})
	waitReady(t, b.pool)
	c, f := b.pool.roundTrip(context.Background(), &filterRequest{Route: "r"}, time.Now().Add(time.Millisecond))
	if c != nil || f != errTimeout {
		t.Fatalf("roundTrip = %v, %v; want errTimeout", c, f)
	}
	close(release) // the late allow must not reach anyone
	b2 := e.bridge(path, nil)
	for i := 0; i < 5; i++ {
		if r := mustPass(t)(b2.modify(newRequest("x"))); r.Headers()["X-Echo"][0] != "payments" {
			t.Fatal("a request got another request's (late) reply")
		}
	}
}

func TestSlowReplyThroughModifierDenies(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {} // never answers
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"deadline": "1ms"})
	waitReady(t, b.pool)
	mustDeny(t, 503)(b.modify(newRequest("x")))
}

func TestRequestContextEndDenies(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	// A request whose context has ended is not sent.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, f := b.pool.roundTrip(ctx, &filterRequest{Route: "r"}, time.Now().Add(time.Hour)); c != nil || f != errCancelled {
		t.Fatalf("roundTrip = %v, %v; want errCancelled", c, f)
	}
	// One that ends while the request waits is denied at the deadline (the wait is not
	// interrupted: it is bounded by the deadline, below 5 ms in production).
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Microsecond); cancel() }()
	if c, f := b.pool.roundTrip(ctx, &filterRequest{Route: "r"}, time.Now().Add(20*time.Millisecond)); c != nil || f != errTimeout {
		t.Fatalf("roundTrip = %v, %v; want errTimeout", c, f)
	}
	// A request context whose deadline is earlier than the configured one bounds the wait.
	req := newRequest("x")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()
	req.ctx = ctx2
	mustDeny(t, 503)(b.modify(req))
}

// connectionFailureCase scripts a peer that breaks the connection in some way while a request
// is pending; the request must be denied with the given failure, and the bridge must
// reconnect afterwards.
func connectionFailureCase(t *testing.T, want failure, misbehave func(pc *peerConn, r *wire.FilterRequest)) {
	t.Helper()
	path := socketPath(t)
	p := newPeer(t, path)
	var mu sync.Mutex
	count := 0
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		mu.Lock()
		count++
		first := count == 1
		mu.Unlock()
		if first {
			misbehave(pc, r)
			return
		}
		pc.reply(&Response{ID: r.Id(), Verdict: VerdictAllow})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	c, f := b.pool.roundTrip(context.Background(), &filterRequest{Route: "r"}, time.Now().Add(2*time.Second))
	if c != nil || f != want {
		t.Fatalf("roundTrip = %v, %v; want %v", c, f, want)
	}
	eventually(t, "the failed connection is closed", func() bool { return p.hangups.Load() >= 1 })
	waitReady(t, b.pool)
	mustPass(t)(b.modify(newRequest("x")))
}

func TestEOFWithoutReplyDenies(t *testing.T) {
	connectionFailureCase(t, errConnLost, func(pc *peerConn, r *wire.FilterRequest) { pc.c.Close() })
}

func TestMalformedReplyDenies(t *testing.T) {
	connectionFailureCase(t, errMalformed, func(pc *peerConn, r *wire.FilterRequest) {
		pc.sendRaw([]byte{0, 0, 0, 12, 8, 0, 0, 0, 'S', 'P', 'F', '1', 0xff, 0xff, 0xff, 0x7f})
	})
}

func TestWrongFileIdentifierDenies(t *testing.T) {
	connectionFailureCase(t, errMalformed, func(pc *peerConn, r *wire.FilterRequest) {
		enc := newEncoder()
		b, _ := enc.FilterResponse(&Response{ID: r.Id(), Verdict: VerdictAllow})
		b[8] = 'X'
		pc.sendRaw(b)
	})
}

func TestFrameLengthAboveLimitDenies(t *testing.T) {
	connectionFailureCase(t, errFrameHeader, func(pc *peerConn, r *wire.FilterRequest) {
		pc.sendRaw([]byte{0x7f, 0xff, 0xff, 0xff})
	})
}

func TestUnknownRequestIDDenies(t *testing.T) {
	connectionFailureCase(t, errUnknownID, func(pc *peerConn, r *wire.FilterRequest) {
		pc.reply(&Response{ID: r.Id() + 1000, Verdict: VerdictAllow})
	})
}

func TestConnectionErrorFailsPendingAndReconnects(t *testing.T) {
	connectionFailureCase(t, errConnError, func(pc *peerConn, r *wire.FilterRequest) {
		pc.sendError(0, wire.ErrorCodeFrameTooLarge)
	})
}

func TestHelloAckAfterHelloIsAProtocolError(t *testing.T) {
	connectionFailureCase(t, errProtocol, func(pc *peerConn, r *wire.FilterRequest) { pc.sendAck(pc.p.ack) })
}

func TestErrorRepliesDenyWithErrorStatus(t *testing.T) {
	codes := []wire.ErrorCode{wire.ErrorCodeMalformed, wire.ErrorCodeUnknownRoute, wire.ErrorCodeUnknownFilter,
		wire.ErrorCodeDeadlineExceeded, wire.ErrorCodeOverloaded, wire.ErrorCodeShuttingDown, wire.ErrorCodeInternal, 99}
	path := socketPath(t)
	p := newPeer(t, path)
	var mu sync.Mutex
	next := 0
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		mu.Lock()
		code := codes[next%len(codes)]
		next++
		mu.Unlock()
		pc.sendError(r.Id(), code)
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"error_status": float64(599)})
	waitReady(t, b.pool)
	accepted := p.accepted.Load()
	for range codes {
		d := mustDeny(t, 599)(b.modify(newRequest("x")))
		if d.Encoding() != problemJSON || !strings.Contains(d.Error(), `"status":599`) {
			t.Errorf("deny body %q", d.Error())
		}
	}
	if b.stats[cFailed].Load() != uint64(len(codes)) {
		t.Errorf("Failed = %d", b.stats[cFailed].Load())
	}
	if p.accepted.Load() != accepted || p.hangups.Load() != 0 {
		t.Errorf("a per-request Error must not cost the connection")
	}
}

func TestVersionMismatchNeverBecomesReady(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onHello = func(pc *peerConn, h *wire.Hello) {
		if h.VersionMin() != 1 || h.VersionMax() != 1 || h.MaxFrameBytes() == 0 || len(h.ClientName()) == 0 {
			t.Errorf("hello = min %d max %d caps %d frame %d", h.VersionMin(), h.VersionMax(), h.Capabilities(), h.MaxFrameBytes())
		}
		pc.sendError(0, wire.ErrorCodeVersionMismatch)
		pc.c.Close()
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	end := time.Now().Add(5 * time.Second)
	for p.hellos.Load() < 3 && time.Now().Before(end) {
		time.Sleep(time.Millisecond)
	}
	err := b.pool.ready()
	if err == nil || !strings.Contains(err.Error(), "VersionMismatch") {
		t.Fatalf("ready() = %v, want a VersionMismatch error", err)
	}
	mustDeny(t, 503)(b.modify(newRequest("x")))
	if p.requests.Load() != 0 {
		t.Errorf("requests were sent before a successful HELLO")
	}
}

func TestBadHelloAnswersNeverBecomeReady(t *testing.T) {
	cases := map[string]func(pc *peerConn){
		"wrong version": func(pc *peerConn) { pc.sendAck(ackParams{version: 2, maxFrame: 1 << 20}) },
		"tiny frame":    func(pc *peerConn) { pc.sendAck(ackParams{version: 1, maxFrame: 10}) },
		"not an ack":    func(pc *peerConn) { pc.reply(&Response{ID: 1}) },
		"garbage":       func(pc *peerConn) { pc.sendRaw([]byte{0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}) },
		"eof":           func(pc *peerConn) { pc.c.Close() },
		"huge length":   func(pc *peerConn) { pc.sendRaw([]byte{0x00, 0x10, 0x00, 0x00}) }, // 1 MiB > the 64 KiB HelloAck limit
		"silent":        func(pc *peerConn) {},                                             // answered by the 250 ms HELLO timeout
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			path := socketPath(t)
			p := newPeer(t, path)
			p.onHello = func(pc *peerConn, h *wire.Hello) { answer(pc) }
			p.start()
			e := newEnv(t)
			b := e.bridge(path, nil)
			eventually(t, "a second HELLO", func() bool { b.pool.ready(); return p.hellos.Load() >= 2 })
			if b.pool.ready() == nil || slices.ContainsFunc(e.log.all(), func(l string) bool { return strings.Contains(l, "ready: peer uid") }) {
				t.Fatal("connection became ready after a bad HelloAck")
			}
			mustDeny(t, 503)(b.modify(newRequest("x")))
		})
	}
}

func TestOversizedBodyIs413WithoutCallingTheDaemon(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path).start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"max_body_bytes": float64(16)})
	waitReady(t, b.pool)
	d := mustDeny(t, 413)(b.modify(newRequest(strings.Repeat("x", 17))))
	if !strings.Contains(d.Error(), "413") {
		t.Errorf("body %q", d.Error())
	}
	mustPass(t)(b.modify(newRequest(strings.Repeat("x", 16))))
	if p.requests.Load() != 1 || b.stats[cTooLarge].Load() != 1 {
		t.Errorf("daemon saw %d requests, TooLarge = %d", p.requests.Load(), b.stats[cTooLarge].Load())
	}
	// A large body read in many small pieces is measured exactly too.
	big := newRequest("")
	big.body = io.NopCloser(io.LimitReader(zeroReader{}, 100000))
	b2 := e.bridge(path, map[string]interface{}{"max_body_bytes": float64(99999)})
	mustDeny(t, 413)(b2.modify(big))
	ok := newRequest("")
	ok.body = io.NopCloser(io.LimitReader(zeroReader{}, 99999))
	r := mustPass(t)(b2.modify(ok))
	if n := len(readAll(t, r.Body())); n != 99999 {
		t.Errorf("backend body is %d bytes", n)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	n := min(len(p), 1000)
	clear(p[:n])
	return n, nil
}

func TestFrameAboveNegotiatedMaximumIs413(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.ack.maxFrame = 1024
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	req := newRequest("x")
	req.headers["X-Big"] = []string{strings.Repeat("h", 1024)}
	mustDeny(t, 413)(b.modify(req))
	if p.requests.Load() != 0 {
		t.Error("a frame above max_frame_bytes was sent")
	}
	mustPass(t)(b.modify(newRequest("small")))
}

// The body never crosses the socket: a body at the route's limit is sent as its digest, so a
// daemon with a small frame limit still judges it, and the backend gets exactly the bytes the
// digest covers.
func TestLargeBodyWithinTheLimitIsNeverDeniedForItsSize(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.ack.maxFrame = 4096
	var seen sync.Map
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		seen.Store(string(r.BodySha256Bytes()), r.BodyLength())
		pc.reply(&Response{ID: r.Id(), Verdict: VerdictAllow})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"max_body_bytes": float64(1 << 20)})
	waitReady(t, b.pool)
	for _, n := range []int{1, 4096, 512 << 10, 1 << 20} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i * 7)
		}
		req := newRequest("")
		req.body = io.NopCloser(bytes.NewReader(body))
		r := mustPass(t)(b.modify(req))
		got := readAll(t, r.Body())
		sum := sha256.Sum256([]byte(got))
		if got != string(body) {
			t.Fatalf("%d bytes: the backend got %d different bytes", n, len(got))
		}
		if l, ok := seen.Load(string(sum[:])); !ok || l.(int) != 0 {
			t.Fatalf("%d bytes: the daemon did not judge the digest of the bytes the backend got", n)
		}
	}
	big := newRequest("")
	big.body = io.NopCloser(bytes.NewReader(make([]byte, 1<<20+1)))
	mustDeny(t, 413)(b.modify(big))
}

func TestBodyReadErrorDeniesEvenInShadowMode(t *testing.T) {
	path := socketPath(t)
	newPeer(t, path).start()
	e := newEnv(t)
	for _, mode := range []string{"enforce", "shadow"} {
		b := e.bridge(path, map[string]interface{}{"mode": mode})
		req := newRequest("")
		req.body = io.NopCloser(errReader{})
		mustDeny(t, 503)(b.modify(req))
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }

func TestConcurrentRepliesReachTheirOwnRequests(t *testing.T) {
	const n = 32
	path := socketPath(t)
	p := newPeer(t, path)
	var mu sync.Mutex
	type heldReq struct {
		pc *peerConn
		r  *wire.FilterRequest
	}
	var held []heldReq
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, heldReq{pc, r})
		if len(held) < n {
			return
		}
		for i := len(held) - 1; i >= 0; i-- { // all in flight at once, answered in reverse order
			h := held[i]
			h.pc.reply(&Response{ID: h.r.Id(), Verdict: VerdictAllow,
				SetHeaders: []Header{{Name: "X-Echo", Values: []string{string(h.r.Route())}}}})
		}
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			route := strings.Repeat("r", i+1)
			// A long deadline: this test is about matching, not speed.
			c, f := b.pool.roundTrip(context.Background(), &filterRequest{Route: route}, time.Now().Add(10*time.Second))
			if f != "" {
				errs <- string(f)
				return
			}
			defer b.pool.put(c, true)
			var h wire.Header
			c.r.resp.SetHeaders(&h, 0)
			if string(h.Name()) != "X-Echo" || h.ValuesLength() != 1 || string(h.Values(0)) != route {
				errs <- "request " + route + " got the reply of " + string(h.Values(0))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if p.accepted.Load() > maxConns+1 {
		t.Errorf("requests used %d connections, want at most %d and the watch connection", p.accepted.Load(), maxConns)
	}
}
