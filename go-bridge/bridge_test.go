package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/codec"
	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// fakeRequest stands for lura's proxy.requestWrapper (v2.13.0). The plugin's own request type has the
// same fields and the same method set (it is what lura copies back on allow), so the tests reuse it.
type fakeRequest = request

const secretToken = "tok_live_SECRET_4242"

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

// The interfaces lura v2.13.0's gin router reads from an error (router/gin/endpoint.go).
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
		route, method, pth, ip, body string
		filters                      []string
		query, params, headers       []string
		budget                       uint32
	}
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		got.Lock()
		got.route, got.method, got.pth, got.ip, got.body = string(r.Route()), string(r.Method()), string(r.Path()), string(r.ClientIp()), string(r.BodyBytes())
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
		pc.reply(&codec.Response{ID: r.Id(), Verdict: codec.VerdictAllow,
			RemoveHeaders: []string{"x-strip-me", "X-Merchant-Id"},
			SetHeaders:    []codec.Header{{Name: "x-merchant-id", Values: []string{"m-17"}}, {Name: "X-Risk", Values: []string{"low", "checked"}}},
		})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.conn)

	req := newRequest(`{"amount":100}`)
	req.headers["X-Merchant-Id"] = []string{"forged"}
	out, err := b.modify(req)
	r := mustPass(t)(out, err)

	got.Lock()
	defer got.Unlock()
	if got.route != "payments" || got.method != "POST" || got.pth != "/v1/payments/m-17" || got.ip != "203.0.113.9" || got.body != `{"amount":100}` {
		t.Errorf("daemon saw route=%q method=%q path=%q ip=%q body=%q", got.route, got.method, got.pth, got.ip, got.body)
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
	if _, ok := req.headers["X-Risk"]; ok {
		t.Error("the caller's header map was modified")
	}
	if body := readAll(t, r.Body()); body != `{"amount":100}` {
		t.Errorf("backend body = %q", body)
	}
	if r.Method() != "POST" || r.Path() != "/v1/payments/m-17" || r.Params()["Merchant"] != "m-17" || r.Query().Get("a") != "x y" || r.Context() == nil || r.URL() != nil {
		t.Error("request getters do not carry the original request")
	}
	if b.stats.Allowed.Load() != 1 {
		t.Errorf("Allowed = %d", b.stats.Allowed.Load())
	}
}

func TestAllowWithoutBodyKeepsNoBody(t *testing.T) {
	path := socketPath(t)
	newPeer(t, path).start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.conn)
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
		pc.reply(&codec.Response{ID: r.Id(), Verdict: codec.VerdictDeny, Status: 429,
			DenyHeaders:     []codec.Header{{Name: "retry-after", Values: []string{"7"}}},
			DenyBody:        []byte(`{"title":"Too Many Requests","status":429}`),
			DenyContentType: "application/problem+json"})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.conn)
	out, err := b.modify(newRequest("x"))
	d := mustDeny(t, 429)(out, err)
	if !slices.Equal(d.Headers()["Retry-After"], []string{"7"}) {
		t.Errorf("headers = %v", d.Headers())
	}
	if d.Error() != `{"title":"Too Many Requests","status":429}` || d.Encoding() != "application/problem+json" {
		t.Errorf("body %q encoding %q", d.Error(), d.Encoding())
	}
	if b.stats.Denied.Load() != 1 {
		t.Errorf("Denied = %d", b.stats.Denied.Load())
	}
}

func TestUnknownVerdictAndNonErrorStatusDenyWithErrorStatus(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		// Verdict 7 is not Allow: a deny. Status 200 cannot be a deny status.
		pc.reply(&codec.Response{ID: r.Id(), Verdict: 7, Status: 200})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"error_status": float64(502)})
	waitReady(t, b.conn)
	mustDeny(t, 502)(b.modify(newRequest("x")))
}

func TestNoDaemonFailsFastWithErrorStatus(t *testing.T) {
	e := newEnv(t)
	b := e.bridge(socketPath(t), nil) // nothing listens there
	c, f := b.conn.roundTrip(context.Background(), &codec.Request{Route: "r"}, time.Now().Add(time.Second))
	if c != nil || f != errDown {
		t.Fatalf("roundTrip = %v, %v; want errDown without waiting for the deadline", c, f)
	}
	mustDeny(t, 503)(b.modify(newRequest("x")))
	if b.stats.Failed.Load() != 1 {
		t.Errorf("Failed = %d", b.stats.Failed.Load())
	}
	if err := b.conn.ready(); err == nil || !strings.Contains(err.Error(), "not connected") {
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
	deadline := time.Now().Add(5 * time.Second)
	for b.conn.lastErr.Load() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if p := b.conn.lastErr.Load(); p == nil || !strings.Contains(*p, "refused") {
		t.Fatalf("last error = %v, want connection refused", p)
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
			go func() { <-release; pc.reply(&codec.Response{ID: id, Verdict: codec.VerdictAllow}) }()
			return
		}
		pc.reply(&codec.Response{ID: r.Id(), Verdict: codec.VerdictAllow})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"deadline": "1ms"})
	waitReady(t, b.conn)
	c, f := b.conn.roundTrip(context.Background(), &codec.Request{Route: "r"}, time.Now().Add(time.Millisecond))
	if c != nil || f != errTimeout {
		t.Fatalf("roundTrip = %v, %v; want errTimeout", c, f)
	}
	close(release) // the late allow must not reach anyone
	b2 := e.bridge(path, nil)
	mustPass(t)(b2.modify(newRequest("x")))
	if got := b.conn.connects.Load(); got != 1 {
		t.Errorf("a late reply must not cost the connection: connects = %d", got)
	}
}

func TestSlowReplyThroughModifierDenies(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {} // never answers
	p.start()
	e := newEnv(t)
	b := e.bridge(path, map[string]interface{}{"deadline": "1ms"})
	waitReady(t, b.conn)
	mustDeny(t, 503)(b.modify(newRequest("x")))
}

func TestRequestContextEndDenies(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.conn)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Microsecond); cancel() }()
	c, f := b.conn.roundTrip(ctx, &codec.Request{Route: "r"}, time.Now().Add(time.Hour))
	if c != nil || f != errCancelled {
		t.Fatalf("roundTrip = %v, %v; want errCancelled", c, f)
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
func connectionFailureCase(t *testing.T, want *failure, misbehave func(pc *peerConn, r *wire.FilterRequest)) {
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
		pc.reply(&codec.Response{ID: r.Id(), Verdict: codec.VerdictAllow})
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.conn)
	c, f := b.conn.roundTrip(context.Background(), &codec.Request{Route: "r"}, time.Now().Add(2*time.Second))
	if c != nil || f != want {
		t.Fatalf("roundTrip = %v, %v; want %v", c, f, want)
	}
	waitReady(t, b.conn)
	mustPass(t)(b.modify(newRequest("x")))
	if b.conn.connects.Load() < 2 {
		t.Errorf("connects = %d, want a reconnect", b.conn.connects.Load())
	}
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
		enc := codec.NewEncoder(256)
		b, _ := enc.FilterResponse(&codec.Response{ID: r.Id(), Verdict: codec.VerdictAllow})
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
		pc.reply(&codec.Response{ID: r.Id() + 1000, Verdict: codec.VerdictAllow})
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
	waitReady(t, b.conn)
	for range codes {
		d := mustDeny(t, 599)(b.modify(newRequest("x")))
		if d.Encoding() != problemJSON || !strings.Contains(d.Error(), `"status":599`) {
			t.Errorf("deny body %q", d.Error())
		}
	}
	if b.stats.Failed.Load() != uint64(len(codes)) {
		t.Errorf("Failed = %d", b.stats.Failed.Load())
	}
	if b.conn.connects.Load() != 1 {
		t.Errorf("a per-request Error must not cost the connection")
	}
}

func TestVersionMismatchNeverBecomesReady(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onHello = func(pc *peerConn, h *wire.Hello) {
		if h.VersionMin() != 1 || h.VersionMax() != 1 || h.Capabilities() != 1 || h.MaxFrameBytes() == 0 || len(h.ClientName()) == 0 {
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
	err := b.conn.ready()
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
		"not an ack":    func(pc *peerConn) { pc.reply(&codec.Response{ID: 1}) },
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
			end := time.Now().Add(5 * time.Second)
			for p.hellos.Load() < 2 && time.Now().Before(end) {
				time.Sleep(time.Millisecond)
			}
			if p.hellos.Load() < 2 {
				t.Fatal("the bridge did not retry the HELLO")
			}
			if b.conn.ready() == nil || b.conn.connects.Load() != 0 {
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
	waitReady(t, b.conn)
	d := mustDeny(t, 413)(b.modify(newRequest(strings.Repeat("x", 17))))
	if !strings.Contains(d.Error(), "413") {
		t.Errorf("body %q", d.Error())
	}
	mustPass(t)(b.modify(newRequest(strings.Repeat("x", 16))))
	if p.requests.Load() != 1 || b.stats.TooLarge.Load() != 1 {
		t.Errorf("daemon saw %d requests, TooLarge = %d", p.requests.Load(), b.stats.TooLarge.Load())
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
	waitReady(t, b.conn)
	mustDeny(t, 413)(b.modify(newRequest(strings.Repeat("x", 1024))))
	if p.requests.Load() != 0 {
		t.Error("a frame above max_frame_bytes was sent")
	}
	mustPass(t)(b.modify(newRequest("small")))
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

func TestOutOfOrderRepliesReachTheirOwnRequests(t *testing.T) {
	const n = 32
	path := socketPath(t)
	p := newPeer(t, path)
	var mu sync.Mutex
	var held []*wire.FilterRequest
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, r)
		if len(held) < n {
			return
		}
		for i := len(held) - 1; i >= 0; i-- { // all pipelined, answered in reverse order
			h := held[i]
			pc.reply(&codec.Response{ID: h.Id(), Verdict: codec.VerdictAllow,
				SetHeaders: []codec.Header{{Name: "X-Echo", Values: []string{string(h.Route())}}}})
		}
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.conn)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			route := strings.Repeat("r", i+1)
			// A long deadline: this test is about matching, not speed.
			c, f := b.conn.roundTrip(context.Background(), &codec.Request{Route: route}, time.Now().Add(10*time.Second))
			if f != nil {
				errs <- f.reason
				return
			}
			defer c.release()
			name, values := c.reply.SetHeaders.At(0)
			if string(name) != "X-Echo" || values.Len() != 1 || string(values.At(0)) != route {
				errs <- "request " + route + " got the reply of " + string(values.At(0))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if p.accepted.Load() != 1 {
		t.Errorf("requests used %d connections, want one shared connection", p.accepted.Load())
	}
}
