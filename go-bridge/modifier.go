package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/codec"
)

// requestWrapper is the method set of the value lura passes to a request modifier
// (proxy.RequestWrapper in lura v2.13.0). Context() is looked up separately (contexter) so
// that a host without it still works, with the plugin's own deadline only.
type requestWrapper interface {
	Params() map[string]string
	Headers() map[string][]string
	Body() io.ReadCloser
	Method() string
	URL() *url.URL
	Query() url.Values
	Path() string
}

type contexter interface{ Context() context.Context }

// request is what the modifier returns on allow: lura copies each getter back into its
// proxy.Request (proxy/plugin.go executeRequestModifiers).
type request struct {
	ctx     context.Context
	method  string
	url     *url.URL
	query   url.Values
	path    string
	body    io.ReadCloser
	params  map[string]string
	headers map[string][]string
}

func (r *request) Context() context.Context     { return r.ctx }
func (r *request) Method() string               { return r.method }
func (r *request) URL() *url.URL                { return r.url }
func (r *request) Query() url.Values            { return r.query }
func (r *request) Path() string                 { return r.path }
func (r *request) Body() io.ReadCloser          { return r.body }
func (r *request) Params() map[string]string    { return r.params }
func (r *request) Headers() map[string][]string { return r.headers }

// DenyError is returned for every denied request. lura's gin router reads StatusCode() for
// the status, Headers() for extra response headers, and, when the router's
// return_error_msg is on, writes Error() as the body with Encoding() as its Content-Type.
type DenyError struct {
	status   int
	headers  map[string][]string
	body     string
	encoding string
}

func (e *DenyError) Error() string                { return e.body }
func (e *DenyError) StatusCode() int              { return e.status }
func (e *DenyError) Headers() map[string][]string { return e.headers }
func (e *DenyError) Encoding() string             { return e.encoding }

const problemJSON = "application/problem+json"

// fixedDeny builds the deny the bridge itself answers with (not chosen by the daemon). It is
// built once per endpoint and shared: its body says nothing about the request or the cause.
func fixedDeny(status int) *DenyError {
	body := `{"type":"about:blank","title":"` + http.StatusText(status) + `","status":` + strconv.Itoa(status) + `}`
	return &DenyError{status: status, headers: map[string][]string{}, body: body, encoding: problemJSON}
}

// Stats are one endpoint's counters. Tests assert on them; they are also the numbers shadow
// mode exists to produce.
type Stats struct {
	Allowed        atomic.Uint64 // daemon allowed (enforce)
	Denied         atomic.Uint64 // daemon denied (enforce)
	Failed         atomic.Uint64 // no usable verdict: denied with error_status (enforce)
	TooLarge       atomic.Uint64 // body above max_body_bytes: 413 (enforce)
	Panics         atomic.Uint64 // recovered panics (always a deny)
	ShadowAllowed  atomic.Uint64 // shadow: daemon allowed
	ShadowDenied   atomic.Uint64 // shadow: daemon would have denied
	ShadowFailed   atomic.Uint64 // shadow: no verdict (would have been a deny)
	ShadowTooLarge atomic.Uint64 // shadow: body above the limit (would have been a 413)
}

// bridge is one endpoint's modifier: its checked config and the shared daemon connection.
type bridge struct {
	cfg      *Config
	conn     *daemonConn
	log      func() Logger
	stats    Stats
	failDeny *DenyError // error_status
	bigDeny  *DenyError // 413
}

// factory is the ModifierFactory lura calls once per endpoint. It never returns nil and never
// a pass-through for a bad config: lura silently skips a nil modifier, which would serve the
// endpoint unfiltered.
func (p *pluginState) factory(block map[string]interface{}) (mod func(interface{}) (interface{}, error)) {
	defer func() {
		if r := recover(); r != nil {
			p.log().Error(line(logPrefix, "panic while building the modifier, endpoint denies every request:", panicText(r)))
			mod = denyAll(fixedDeny(DefaultErrorStatus))
		}
	}()
	factoryHook(block)
	cfg, err := ParseConfig(block)
	if err != nil {
		p.log().Error(line(logPrefix, "invalid config, endpoint denies every request:", err.Error()))
		status := DefaultErrorStatus
		if m, ok := block[extraConfigKey].(map[string]interface{}); ok {
			if n, ok := wholeNumber(m["error_status"]); ok && n >= 400 && n <= 599 {
				status = int(n)
			}
		}
		return denyAll(fixedDeny(status))
	}
	return p.newBridge(cfg).modify
}

// factoryHook lets tests make the factory panic; it does nothing in production.
var factoryHook = func(map[string]interface{}) {}

func (p *pluginState) newBridge(cfg *Config) *bridge {
	b := &bridge{cfg: cfg, conn: p.conn(cfg.SocketPath), log: p.log,
		failDeny: fixedDeny(cfg.ErrorStatus), bigDeny: fixedDeny(http.StatusRequestEntityTooLarge)}
	p.mu.Lock()
	p.bridges = append(p.bridges, b)
	p.mu.Unlock()
	mode := "enforce"
	if cfg.Shadow {
		mode = "shadow (rollout only: verdicts are logged, never applied)"
		p.log().Warning(line(logPrefix, "route", cfg.RouteID, "runs in shadow mode: requests pass whatever the verdict"))
	}
	p.log().Info(line(logPrefix, "route", cfg.RouteID, "filters", strings.Join(cfg.Filters, ","), "deadline", cfg.Deadline.String(), "mode", mode))
	return b
}

func denyAll(deny *DenyError) func(interface{}) (interface{}, error) {
	return func(interface{}) (interface{}, error) { return nil, deny }
}

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// bodyReader is the restored body handed to the backend.
type bodyReader struct{ bytes.Reader }

func (*bodyReader) Close() error { return nil }

// modify is the per-request entry point.
func (b *bridge) modify(in interface{}) (out interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			// Even in shadow mode a panic denies: the body may already be consumed, and a
			// request that reaches the backend without it is worse than a 503.
			b.stats.Panics.Add(1)
			b.log().Error(line(logPrefix, "route", b.cfg.RouteID, "panic in request modifier, denied:", panicText(r)))
			out, err = nil, b.failDeny
		}
	}()
	req, ok := in.(requestWrapper)
	if !ok {
		b.stats.Failed.Add(1)
		b.log().Error(line(logPrefix, "route", b.cfg.RouteID, "request of unexpected type, denied"))
		return nil, b.failDeny
	}
	ctx := context.Background()
	if c, ok := in.(contexter); ok {
		if cc := c.Context(); cc != nil {
			ctx = cc
		}
	}

	bufp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bufp) <= 256<<10 {
			*bufp = (*bufp)[:0]
			bodyPool.Put(bufp)
		}
	}()
	orig := req.Body()
	hadBody := orig != nil
	body, tooLarge, rerr := readBody(orig, b.cfg.MaxBodyBytes, bufp)
	if rerr != nil {
		return b.fail(req, ctx, hadBody, nil, nil, errBodyRead)
	}
	if tooLarge {
		if b.cfg.Shadow {
			b.stats.ShadowTooLarge.Add(1)
			b.log().Info(line(logPrefix, "route", b.cfg.RouteID, "shadow: body above max_body_bytes, would be 413"))
			// Give the backend what was read followed by the unread rest.
			rest := io.MultiReader(bytes.NewReader(bytes.Clone(body)), orig)
			return wrap(req, ctx, struct {
				io.Reader
				io.Closer
			}{rest, orig}, req.Headers()), nil
		}
		b.stats.TooLarge.Add(1)
		b.log().Debug(line(logPrefix, "route", b.cfg.RouteID, "body above max_body_bytes, denied with 413"))
		return nil, b.bigDeny
	}
	if orig != nil {
		orig.Close()
	}

	deadline := time.Now().Add(b.cfg.Deadline)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	headers := req.Headers()
	creq := codec.Request{
		Route:      b.cfg.RouteID,
		Filters:    b.cfg.Filters,
		Method:     req.Method(),
		Path:       req.Path(),
		Query:      req.Query(),
		Headers:    headers,
		ClientIP:   clientIP(headers),
		Body:       body,
		PathParams: req.Params(),
	}
	if u := req.URL(); u != nil {
		creq.Path = u.EscapedPath()
	}
	c, fail := b.conn.roundTrip(ctx, &creq, deadline)
	if fail != nil {
		if fail == errFrameLimit {
			if b.cfg.Shadow {
				b.stats.ShadowTooLarge.Add(1)
				return wrap(req, ctx, restore(hadBody, body), headers), nil
			}
			b.stats.TooLarge.Add(1)
			return nil, b.bigDeny
		}
		return b.fail(req, ctx, hadBody, body, headers, fail)
	}
	defer c.release()
	r := &c.reply
	if r.Kind == codec.KindError {
		b.log().Debug(line(logPrefix, "route", b.cfg.RouteID, "daemon error:", errorCodeName(r.Code)))
		return b.fail(req, ctx, hadBody, body, headers, errReplyError)
	}
	if r.Verdict != codec.VerdictAllow {
		if b.cfg.Shadow {
			b.stats.ShadowDenied.Add(1)
			b.log().Info(line(logPrefix, "route", b.cfg.RouteID, "shadow: daemon would deny with status", r.Status))
			return wrap(req, ctx, restore(hadBody, body), headers), nil
		}
		b.stats.Denied.Add(1)
		return nil, b.denyFrom(r)
	}
	if b.cfg.Shadow {
		b.stats.ShadowAllowed.Add(1)
		return wrap(req, ctx, restore(hadBody, body), headers), nil
	}
	b.stats.Allowed.Add(1)
	return wrap(req, ctx, restore(hadBody, body), applyHeaders(headers, r)), nil
}

var errBodyRead = &failure{"request body could not be read"}

// fail turns a failure into a deny with error_status (enforce) or lets the request through
// unchanged (shadow). A body that could not be read cannot be restored, so that failure
// denies in both modes.
func (b *bridge) fail(req requestWrapper, ctx context.Context, hadBody bool, body []byte, headers map[string][]string, f *failure) (interface{}, error) {
	if b.cfg.Shadow && f != errBodyRead {
		b.stats.ShadowFailed.Add(1)
		b.log().Warning(line(logPrefix, "route", b.cfg.RouteID, "shadow: no verdict, request passed:", f.reason))
		return wrap(req, ctx, restore(hadBody, body), headers), nil
	}
	b.stats.Failed.Add(1)
	b.log().Debug(line(logPrefix, "route", b.cfg.RouteID, "denied:", f.reason))
	return nil, b.failDeny
}

// readBody reads r into *bufp up to limit bytes. tooLarge reports that more than limit
// bytes were available; the returned slice then holds what was read so far.
func readBody(r io.Reader, limit int, bufp *[]byte) (body []byte, tooLarge bool, err error) {
	if r == nil {
		return nil, false, nil
	}
	buf := (*bufp)[:0]
	defer func() { *bufp = buf }()
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, true, nil
			}
			buf = append(buf, 0)[:len(buf)]
		}
		// Read at most one byte past the limit: that byte is enough to tell "too large".
		room := min(cap(buf), limit+1)
		n, err := r.Read(buf[len(buf):room])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, true, nil
		}
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// restore gives the backend the body that was read: nil stays nil (lura then sends no
// body), an empty body becomes http.NoBody (which net/http sends without chunking), and
// anything else a reader over a copy (the read buffer goes back to its pool).
func restore(hadBody bool, body []byte) io.ReadCloser {
	if !hadBody {
		return nil
	}
	if len(body) == 0 {
		return http.NoBody
	}
	r := &bodyReader{}
	r.Reset(bytes.Clone(body))
	return r
}

func wrap(req requestWrapper, ctx context.Context, body io.ReadCloser, headers map[string][]string) *request {
	return &request{ctx: ctx, method: req.Method(), url: req.URL(), query: req.Query(), path: req.Path(),
		body: body, params: req.Params(), headers: headers}
}

// clientIP is the address lura's gin router computed (c.ClientIP(), honouring the gateway's
// trusted-proxy settings) and put in X-Forwarded-For before the modifiers run.
func clientIP(h map[string][]string) string {
	v := h["X-Forwarded-For"]
	if len(v) == 0 {
		return ""
	}
	ip, _, _ := strings.Cut(v[0], ",")
	return strings.TrimSpace(ip)
}

// applyHeaders returns the upstream headers after the allow verdict: remove_headers first,
// then set_headers (replacing every existing value). Names match case-insensitively. The map
// lura passed in is not modified: a new one is built when anything changes.
func applyHeaders(h map[string][]string, r *codec.Reply) map[string][]string {
	if r.RemoveHeaders.Len() == 0 && r.SetHeaders.Len() == 0 {
		return h
	}
	out := make(map[string][]string, len(h)+r.SetHeaders.Len())
next:
	for k, v := range h {
		for i := 0; i < r.RemoveHeaders.Len(); i++ {
			if equalFold(r.RemoveHeaders.At(i), k) {
				continue next
			}
		}
		for i := 0; i < r.SetHeaders.Len(); i++ {
			if name, _ := r.SetHeaders.At(i); equalFold(name, k) {
				continue next
			}
		}
		out[k] = v
	}
	for i := 0; i < r.SetHeaders.Len(); i++ {
		name, values := r.SetHeaders.At(i)
		vs := make([]string, values.Len())
		for j := range vs {
			vs[j] = string(values.At(j))
		}
		key := textproto.CanonicalMIMEHeaderKey(string(name))
		out[key] = append(out[key], vs...)
	}
	return out
}

// denyFrom builds the client response the daemon chose. A status outside 400-599 cannot be
// a deny, so it is replaced by error_status.
func (b *bridge) denyFrom(r *codec.Reply) *DenyError {
	status := int(r.Status)
	if status < 400 || status > 599 {
		status = b.cfg.ErrorStatus
	}
	h := make(map[string][]string, r.DenyHeaders.Len())
	for i := 0; i < r.DenyHeaders.Len(); i++ {
		name, values := r.DenyHeaders.At(i)
		key := textproto.CanonicalMIMEHeaderKey(string(name))
		for j := 0; j < values.Len(); j++ {
			h[key] = append(h[key], string(values.At(j)))
		}
	}
	return &DenyError{status: status, headers: h, body: string(r.DenyBody), encoding: string(r.DenyContentType)}
}

// equalFold compares ASCII case-insensitively without allocating.
func equalFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
