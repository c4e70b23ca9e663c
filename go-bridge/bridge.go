package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// requestWrapper is the method set of the value lura hands a request modifier.
type requestWrapper interface {
	Context() context.Context
	Params() map[string]string
	Headers() map[string][]string
	Body() io.ReadCloser
	Method() string
	URL() *url.URL
	Query() url.Values
	Path() string
}

// request is what the modifier returns when the request goes on: lura copies each getter
// back into its proxy.Request. Headers are changed in the map lura built for this request.
type request struct {
	requestWrapper
	body io.ReadCloser
	rb   bodyReader // the body handed to the backend, when there is one
}

func (r *request) Body() io.ReadCloser { return r.body }

// DenyError is every answer instead of the request: lura's router sends StatusCode(), Headers()
// and, with return_error_msg, Error() as a body of type Encoding().
type DenyError struct {
	status         int
	headers        map[string][]string
	body, encoding string
}

func (e *DenyError) Error() string                { return e.body }
func (e *DenyError) StatusCode() int              { return e.status }
func (e *DenyError) Headers() map[string][]string { return e.headers }
func (e *DenyError) Encoding() string             { return e.encoding }

// fixedDeny is the bridge's own deny: its body says nothing about the request or the cause.
func fixedDeny(status int) *DenyError {
	body := `{"type":"about:blank","title":"` + http.StatusText(status) + `","status":` + strconv.Itoa(status) + `}`
	return &DenyError{status: status, body: body, encoding: "application/problem+json"}
}

// probeReady is mode "probe"'s answer when filterd allows: lura answers 200 with this body.
var probeReady = &DenyError{status: http.StatusOK, body: `{"status":"ready"}`, encoding: "application/json"}

// Counters of one endpoint; Counters() sums them per route.
const cAllowed, cDenied, cFailed, cTooLarge, cPanics, cShadowAllowed, cShadowDenied, cShadowFailed, cDeadlineMissed, cReadLate, nCounters = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10

var counterNames = [nCounters]string{"allowed", "denied", "failed", "too_large", "panics", "shadow_allowed", "shadow_denied", "shadow_failed", "deadline_missed", "read_after_deadline"}

// bridge is one endpoint's modifier; everything in it is safe for concurrent requests.
type bridge struct {
	cfg               *Config
	pool              *pool
	p                 *pluginState
	stats             [nCounters]atomic.Uint64
	failDeny, bigDeny *DenyError  // error_status, 413
	enforcing         atomic.Bool // the end of the shadow period has been logged
	sum               struct {
		mu   sync.Mutex
		next time.Time
		last [nCounters]uint64 // the counters at the last summary line
		why  failure           // the latest reason
	}
}

// factory is the ModifierFactory lura calls per endpoint. Never nil: lura would skip it.
func (p *pluginState) factory(block map[string]interface{}) (mod func(interface{}) (interface{}, error)) {
	deny := fixedDeny(DefaultErrorStatus)
	denyAll := func(interface{}) (interface{}, error) { return nil, deny }
	defer func() {
		if r := recover(); r != nil {
			p.log(Logger.Error, logPrefix, "panic while building the modifier, endpoint denies every request:", panicText(r))
			mod = denyAll
		}
	}()
	cfg, err := ParseConfig(block)
	if err == nil {
		return p.newBridge(cfg).modify
	}
	p.log(Logger.Error, logPrefix, "invalid config, endpoint denies every request:", err.Error())
	m, _ := block[Name].(map[string]interface{})
	if n, ok := m["error_status"].(float64); ok && n >= 400 && n <= 599 {
		deny = fixedDeny(int(n))
	}
	return denyAll
}

func (p *pluginState) newBridge(cfg *Config) *bridge {
	b := &bridge{cfg: cfg, p: p, failDeny: fixedDeny(cfg.ErrorStatus), bigDeny: fixedDeny(http.StatusRequestEntityTooLarge)}
	key := poolKey{cfg.SocketPath, cfg.DaemonUID, cfg.DaemonGID}
	p.mu.Lock()
	defer p.mu.Unlock() // held while logging too: a panic must not leave it locked
	if b.pool = p.pools[key]; b.pool == nil {
		b.pool = newPool(p.ctx, key, p.log)
		p.pools[key] = b.pool
	}
	p.bridges = append(p.bridges, b)
	p.log(Logger.Info, logPrefix, "endpoint configured: route="+cfg.RouteID, "mode="+cfg.Mode, "filters="+strings.Join(cfg.Filters, ","),
		"socket="+cfg.SocketPath, "deadline="+cfg.Deadline.String())
	if cfg.Mode == "shadow" {
		p.log(Logger.Warning, logPrefix, "route="+cfg.RouteID, "runs in SHADOW mode until", cfg.ShadowUntil.Format(time.RFC3339)+":",
			"requests pass whatever filterd answers, authentication included; after that time the route enforces")
	}
	return b
}

func (b *bridge) modify(in interface{}) (out interface{}, err error) {
	defer func() {
		if r := recover(); r != nil { // a deny in every mode: the body may be consumed already
			b.count(cPanics, failure("panic: "+panicText(r)))
			out, err = nil, b.failDeny
		}
	}()
	req, ok := in.(requestWrapper)
	if !ok || req.Context() == nil {
		return b.answer(nil, nil, cFailed, errInput, b.failDeny)
	}
	shadow := b.cfg.Mode == "shadow" && time.Now().Before(b.cfg.ShadowUntil)
	if b.cfg.Mode == "shadow" && !shadow && b.enforcing.CompareAndSwap(false, true) {
		b.p.log(Logger.Warning, logPrefix, "route="+b.cfg.RouteID, "shadow period ended: the route enforces")
	}
	digest, headers := emptySHA256, req.Headers()
	var body *bodyBuf
	if orig := req.Body(); orig != nil && b.cfg.Mode != "probe" {
		body = getBody()
		tooLarge, rerr := body.fill(orig, b.cfg.MaxBodyBytes)
		if orig.Close(); tooLarge {
			return b.answer(req, body, cTooLarge, errTooLarge, b.bigDeny)
		} else if rerr != nil {
			return b.answer(req, body, cFailed, errBodyRead, b.failDeny)
		}
		digest = body.sum
	}
	// The clock starts once the body is read: reading it waits on the client, not on filterd.
	deadline := time.Now().Add(b.cfg.Deadline)
	if d, ok := req.Context().Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fr := filterRequest{Route: b.cfg.RouteID, Filters: b.cfg.Filters, Method: req.Method(), Path: req.Path(),
		Query: req.Query(), Headers: headers, ClientIP: clientIP(headers), BodySHA256: digest[:], PathParams: req.Params()}
	if u := req.URL(); u != nil {
		fr.Path = u.EscapedPath()
	}
	c, f := b.pool.roundTrip(req.Context(), &fr, deadline)
	if f == errTimeout {
		b.stats[cDeadlineMissed].Add(1)
	} else if f == "" {
		defer b.pool.put(c, true)
		if c.late {
			b.stats[cReadLate].Add(1)
		}
		if c.r.kind == wire.BodyError {
			f = failure("daemon answered with error " + c.r.code.String())
		}
	}
	switch allow := f == "" && c.r.verdict == wire.VerdictAllow; {
	case f == errFrameLimit:
		return b.answer(req, body, cTooLarge, f, b.bigDeny)
	case f != "" && shadow:
		return b.answer(req, body, cShadowFailed, f, nil)
	case f != "":
		return b.answer(req, body, cFailed, f, b.failDeny)
	case shadow && allow:
		return b.answer(req, body, cShadowAllowed, "", nil)
	case shadow:
		return b.answer(req, body, cShadowDenied, "", nil)
	case !allow:
		return b.answer(req, body, cDenied, "", b.denyFrom(&c.r))
	case b.cfg.Mode == "probe":
		return b.answer(req, body, cAllowed, "", probeReady)
	}
	applyHeaders(headers, &c.r.resp)
	return b.answer(req, body, cAllowed, "", nil)
}

// answer counts outcome i, then returns deny or hands on the request (an empty body: http.NoBody).
func (b *bridge) answer(req requestWrapper, body *bodyBuf, i int, why failure, deny *DenyError) (interface{}, error) {
	b.count(i, why)
	if deny != nil {
		body.release()
		return nil, deny
	}
	r := &request{requestWrapper: req, body: req.Body()}
	if body != nil && body.Len() == 0 {
		body.release()
		r.body = http.NoBody
	} else if body != nil {
		r.rb.buf, r.body = body, &r.rb
	}
	return r, nil
}

// count counts an outcome and logs denies and failures as a summary: one line per route per
// interval at most, with the counts since the previous line and the latest reason.
func (b *bridge) count(i int, why failure) {
	if b.stats[i].Add(1); i == cAllowed || i == cShadowAllowed {
		return
	}
	s := &b.sum
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.why = cmp.Or(why, s.why); time.Now().Before(s.next) {
		return
	}
	parts, level := []string{}, Logger.Info
	for i := range s.last {
		if v := b.stats[i].Load(); v > s.last[i] {
			parts = append(parts, counterNames[i]+"="+strconv.FormatUint(v-s.last[i], 10))
			if i == cFailed || i == cPanics || i == cShadowFailed {
				level = Logger.Warning
			}
			s.last[i] = v
		}
	}
	if s.why != "" {
		parts, s.why = append(parts, "latest: "+string(s.why)), ""
	}
	s.next = time.Now().Add(b.p.summaryGap)
	b.p.log(level, logPrefix, "route="+b.cfg.RouteID, "since the last summary:", strings.Join(parts, " "))
}

// clientIP is the address lura's router put first in X-Forwarded-For (trusted proxies applied).
func clientIP(h map[string][]string) string {
	if v := h["X-Forwarded-For"]; len(v) > 0 {
		ip, _, _ := strings.Cut(v[0], ",")
		return strings.TrimSpace(ip)
	}
	return ""
}

// applyHeaders applies an allow's remove_headers, then set_headers (replacing every value), in
// place, case-insensitively. Value slices, which lura may share, are not written to. The set
// names and values are copied into one string and one slice.
func applyHeaders(h map[string][]string, resp *wire.FilterResponse) {
	drop := func(name []byte) {
		maps.DeleteFunc(h, func(k string, _ []string) bool { return strings.EqualFold(string(name), k) })
	}
	for i := range resp.RemoveHeadersLength() {
		drop(resp.RemoveHeaders(i))
	}
	var hd wire.Header
	var sb strings.Builder
	size, nv := 0, 0
	for i := range resp.SetHeadersLength() {
		resp.SetHeaders(&hd, i)
		drop(hd.Name())
		for j := range hd.ValuesLength() {
			size, nv = size+len(hd.Values(j)), nv+1
		}
		size += len(hd.Name())
	}
	sb.Grow(size)
	str := func(b []byte) string { sb.Write(b); return sb.String()[sb.Len()-len(b):] }
	vals := make([]string, nv)
	for i := range resp.SetHeadersLength() {
		resp.SetHeaders(&hd, i)
		m := hd.ValuesLength()
		name, v := textproto.CanonicalMIMEHeaderKey(str(hd.Name())), vals[:m:m]
		for j := range v {
			v[j] = str(hd.Values(j))
		}
		if old, ok := h[name]; ok { // the reply sets this name twice
			v = append(old[:len(old):len(old)], v...)
		}
		h[name], vals = v, vals[m:]
	}
}

// denyFrom builds the answer the daemon chose; a status outside 400-599 becomes error_status.
func (b *bridge) denyFrom(r *reply) *DenyError {
	d := &DenyError{status: int(r.status), body: string(r.resp.DenyBodyBytes()), encoding: string(r.resp.DenyContentType())}
	if d.status < 400 || d.status > 599 {
		d.status = b.cfg.ErrorStatus
	}
	if r.resp.DenyHeadersLength() > 0 {
		d.headers = map[string][]string{}
	}
	var hd wire.Header
	for i := range r.resp.DenyHeadersLength() {
		r.resp.DenyHeaders(&hd, i)
		name := textproto.CanonicalMIMEHeaderKey(string(hd.Name()))
		for j := range hd.ValuesLength() {
			d.headers[name] = append(d.headers[name], string(hd.Values(j)))
		}
	}
	return d
}

var emptySHA256 = sha256.Sum256(nil)

// bodyBuf holds a body and its SHA-256: the backend reads the very bytes that were hashed, and
// the pooled buffer is reused once the backend closes the body.
type bodyBuf struct {
	bytes.Buffer
	lr  io.LimitedReader
	sum [sha256.Size]byte
}

// bodyPool keeps up to 16 body buffers across garbage collections (a sync.Pool would drop a
// 1 MiB buffer at every GC): memory stays below 16 times twice the largest max_body_bytes.
var bodyPool = make(chan *bodyBuf, 16)

func getBody() *bodyBuf {
	select {
	case bb := <-bodyPool:
		return bb
	default:
		return &bodyBuf{}
	}
}

// fill reads r, up to limit bytes, and hashes them. tooLarge reports that r had more.
func (bb *bodyBuf) fill(r io.Reader, limit int) (tooLarge bool, err error) {
	bb.Reset()
	bb.lr = io.LimitedReader{R: r, N: int64(limit) + 1}
	_, err = bb.ReadFrom(&bb.lr)
	bb.lr.R, bb.sum = nil, sha256.Sum256(bb.Bytes())
	return bb.Len() > limit, err
}

func (bb *bodyBuf) release() {
	if bb != nil {
		select {
		case bodyPool <- bb:
		default:
		}
	}
}

// bodyReader is the backend's view of a bodyBuf; net/http may Close while another goroutine
// reads, and after Close the buffer is back in the pool.
type bodyReader struct {
	mu  sync.Mutex
	buf *bodyBuf
}

var errBodyClosed = errors.New("request body already closed")

func (r *bodyReader) Read(p []byte) (n int, err error) {
	defer func() {
		if recover() != nil {
			n, err = 0, errBodyClosed
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf == nil {
		return 0, errBodyClosed
	}
	return r.buf.Read(p)
}

func (r *bodyReader) Close() error {
	defer func() { _ = recover() }()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.release()
	r.buf = nil
	return nil
}
