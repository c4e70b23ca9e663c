package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// Connection mechanics; the route's deadline bounds every request whatever these are.
const (
	minBackoff, maxBackoff = 5 * time.Millisecond, 50 * time.Millisecond // reconnect delays while down
	stallLimit, stallTime  = 16, 100 * time.Millisecond                  // timeouts in a row, and time without a reply, of a stalled daemon
	maxConns               = 32                                          // connections per pool, each with at most one request in flight
	proposedMaxFrame       = 1 << 20
	maxReplyItems          = 1024 // header names and values in one reply: reading one stays linear
	clientName             = "simpaisa-plugin-filter-bridge/2"
	fileIdentifier         = "SPF1"
	tokenChars             = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~" // RFC 9110
)

// failure is why a request got no verdict. The texts are fixed and carry no request data.
type failure string

func (f failure) Error() string { return string(f) }
func (f failure) Timeout() bool { return f == errTimeout }

const (
	errDown        failure = "daemon not connected"
	errTimeout     failure = "deadline exceeded waiting for the daemon"
	errCancelled   failure = "request context ended"
	errOverloaded  failure = "every connection to the daemon is busy"
	errFrameLimit  failure = "request frame above the negotiated max_frame_bytes"
	errConnLost    failure = "daemon connection closed before the reply"
	errMalformed   failure = "malformed frame from the daemon"
	errUnknownID   failure = "reply for a request id that was never sent"
	errConnError   failure = "daemon reported a connection error"
	errProtocol    failure = "unexpected frame from the daemon"
	errWrite       failure = "write to the daemon failed"
	errStalled     failure = "daemon stopped answering"
	errShutdown    failure = "plugin context cancelled"
	errFrameHeader failure = "frame length from the daemon out of range"
	errBodyRead    failure = "request body could not be read"
	errTooLarge    failure = "request body above max_body_bytes"
	errInput       failure = "request of unexpected type"
	// Why decodeReply refused a frame (readReply then fails with errMalformed).
	errShort       failure = "frame shorter than root offset and file identifier, or not SPF1"
	errBounds      failure = "frame offset or length out of bounds"
	errUnionType   failure = "frame body is missing or not a reply type"
	errHeaderName  failure = "header name is missing or not an HTTP token"
	errHeaderValue failure = "header value contains CR, LF or NUL"
	errTooMany     failure = "too many header names and values"
)

// poolKey identifies a pool: endpoints naming the same socket and expected peer share one.
type poolKey struct {
	path string
	uid  uint32
	gid  int64 // -1: not checked
}

// pool: the connections to one socket, one request in flight each. While down (lastErr set), requests
// are denied at once, but one per backoff interval tries again.
type pool struct {
	key      poolKey
	ctx      context.Context
	log      func(func(Logger, ...interface{}), ...interface{})
	timeouts atomic.Int32 // request timeouts in a row
	replied  atomic.Int64 // when the latest reply came (UnixNano)
	lastErr  atomic.Pointer[string]
	mu       sync.Mutex
	idle     []*conn
	open     int           // connections, idle or busy
	freed    chan struct{} // closed when a connection goes back while requests wait for one
	backoff  time.Duration
	retryAt  time.Time
}

// conn is one checked connection; while a request holds it, nothing else touches it.
type conn struct {
	c        net.Conn
	raw      syscall.RawConn
	maxFrame uint32
	nextID   uint64
	enc      *encoder
	buf      []byte
	r        reply
	late     bool // r was read after the deadline, from the socket buffer
}

func newPool(ctx context.Context, key poolKey, log func(func(Logger, ...interface{}), ...interface{})) *pool {
	p, msg := &pool{key: key, ctx: ctx, log: log, backoff: minBackoff}, "not connected yet"
	p.lastErr.Store(&msg)
	context.AfterFunc(ctx, p.flush)
	return p
}

// setDown records why the daemon is unreachable (logging changes only) and drops idle connections.
func (p *pool) setDown(err error) {
	if msg, prev := err.Error(), p.lastErr.Load(); prev == nil || *prev != msg {
		p.log(Logger.Error, logPrefix, "filterd connection", p.key.path, "down:", msg)
		p.lastErr.Store(&msg)
	}
	p.flush()
}

func (p *pool) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.c.Close()
	}
	p.open, p.idle = p.open-len(p.idle), p.idle[:0]
}

// get hands out an idle connection (most recent first), or opens one: while down, once per backoff.
// When every connection is busy it waits for one until the deadline: a slow verdict beats a deny.
func (p *pool) get(ctx context.Context, deadline time.Time) (c *conn, f failure) {
	p.mu.Lock()
	for len(p.idle) == 0 && p.open >= maxConns {
		p.freed = cmp.Or(p.freed, make(chan struct{}))
		freed := p.freed
		p.mu.Unlock()
		select {
		case <-freed:
		case <-time.After(time.Until(deadline)):
			return nil, errOverloaded
		case <-ctx.Done():
			return nil, errCancelled
		}
		p.mu.Lock()
	}
	down := p.lastErr.Load() != nil
	if n := len(p.idle); n > 0 {
		c, p.idle = p.idle[n-1], p.idle[:n-1]
	} else if down && time.Now().Before(p.retryAt) {
		f = errDown
	} else if p.open++; down {
		p.retryAt, p.backoff = time.Now().Add(p.backoff), min(2*p.backoff, maxBackoff)
	}
	p.mu.Unlock()
	if c != nil || f != "" {
		return c, f
	}
	c, err := p.dial(deadline)
	if f = ioFailure(err, errDown); f == errTimeout { // the request's deadline: no sign that the daemon is down
		return nil, p.lost(nil, f)
	} else if f != "" {
		p.put(nil, false)
		p.setDown(err)
		return nil, f
	} else if p.lastErr.Swap(nil) != nil {
		p.mu.Lock()
		p.backoff = minBackoff
		p.mu.Unlock()
		p.log(Logger.Info, logPrefix, "filterd connection", p.key.path, "ready: peer uid", p.key.uid, "max_frame_bytes", c.maxFrame)
	}
	return c, ""
}

// put takes back a connection: kept when ok, else closed (nil: never opened).
func (p *pool) put(c *conn, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.freed != nil {
		close(p.freed)
		p.freed = nil
	}
	if ok && p.ctx.Err() == nil {
		p.idle = append(p.idle, c)
		return
	} else if c != nil {
		c.c.Close()
	}
	p.open--
}

// dial connects, checks the peer's credentials and completes the HELLO exchange by deadline.
func (p *pool) dial(deadline time.Time) (c *conn, err error) {
	d := net.Dialer{Deadline: deadline}
	nc, err := d.DialContext(p.ctx, "unix", p.key.path)
	if err != nil {
		return nil, err
	}
	raw, _ := nc.(*net.UnixConn).SyscallConn() // never fails on a connected socket
	c = &conn{c: nc, raw: raw, enc: newEncoder(), buf: make([]byte, 4096), maxFrame: proposedMaxFrame}
	if err = c.peerCheck(p.key); err != nil {
		err = fmt.Errorf("peer check: %v", err)
	} else if _, err = c.write(c.enc.hello(), deadline); err != nil {
		err = fmt.Errorf("hello: write: %w", err)
	} else if f := c.readReply(0); f != "" && f != errConnError {
		err = fmt.Errorf("hello: %w", f) // readReply(0) accepts only a HelloAck or an Error
	} else if a := &c.r.ack; c.r.kind == wire.BodyError {
		err = fmt.Errorf("hello refused: %s", c.r.code)
	} else if a.Version() != 1 || a.MaxFrameBytes() < 64 {
		err = fmt.Errorf("hello: daemon chose protocol version %d, max_frame_bytes %d: unusable (bridge speaks 1)", a.Version(), a.MaxFrameBytes())
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.maxFrame = min(c.r.ack.MaxFrameBytes(), proposedMaxFrame)
	return c, nil
}

// peerCheck requires the SO_PEERCRED uid (and gid, if set) of the daemon: anyone else could allow.
func (c *conn) peerCheck(key poolKey) (err error) {
	var cred *syscall.Ucred
	cerr := c.raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	switch err = cmp.Or(cerr, err); {
	case err != nil:
		return fmt.Errorf("SO_PEERCRED: %v", err)
	case cred.Uid != key.uid:
		return fmt.Errorf("the socket is served by uid %d, daemon_uid is %d: not filterd, refused", cred.Uid, key.uid)
	case key.gid >= 0 && int64(cred.Gid) != key.gid:
		return fmt.Errorf("the socket is served by gid %d, daemon_gid is %d: not filterd, refused", cred.Gid, key.gid)
	}
	return nil
}

// roundTrip sends req and reads its reply (c.r) by deadline; on success the caller puts c back.
func (p *pool) roundTrip(ctx context.Context, req *filterRequest, deadline time.Time) (*conn, failure) {
	if p.ctx.Err() != nil {
		return nil, errShutdown
	} else if ctx.Err() != nil {
		return nil, errCancelled
	}
	for retry := true; ; retry = false {
		c, f := p.get(ctx, deadline)
		if f != "" {
			return nil, f
		}
		wait := time.Until(deadline)
		c.nextID, c.late = c.nextID+1, false
		req.ID, req.BudgetUS = c.nextID, uint32(min(max(wait.Microseconds(), 0), 1<<32-1))
		frame := c.enc.filterRequest(req)
		if len(frame)-4 > int(c.maxFrame) {
			p.put(c, true)
			return nil, errFrameLimit
		} else if wait <= 0 {
			p.put(c, true)
			return nil, errTimeout
		}
		n, err := c.write(frame, deadline)
		if f = ioFailure(err, errWrite); f == errWrite && n == 0 && retry {
			p.put(c, false) // nothing delivered: the daemon had closed it, and so the idle ones
			p.flush()
			continue
		} else if f == "" {
			f = c.readReply(req.ID)
		}
		if f != "" {
			return nil, p.lost(c, f)
		}
		p.timeouts.Store(0)
		p.replied.Store(time.Now().UnixNano())
		return c, ""
	}
}

func (c *conn) write(frame []byte, deadline time.Time) (int, error) {
	if err := c.c.SetDeadline(deadline); err != nil {
		return 0, err
	}
	return c.c.Write(frame)
}

// lost closes a failed connection. stallLimit timeouts in a row with no reply for stallTime mark the
// daemon as stalled (e.g. SIGSTOPped); a burst of late replies on a busy node does not.
func (p *pool) lost(c *conn, f failure) failure {
	p.put(c, false)
	if f == errTimeout && p.timeouts.Add(1) >= stallLimit && time.Now().UnixNano()-p.replied.Load() > int64(stallTime) && p.lastErr.Load() == nil {
		p.mu.Lock()
		p.retryAt = time.Now().Add(p.backoff)
		p.mu.Unlock()
		p.setDown(errStalled)
	}
	return f
}

// ioFailure names a read or write error: errTimeout for a timeout, else other ("" for nil).
func ioFailure(err error, other failure) failure {
	if err == nil {
		return ""
	} else if ne := (interface{ Timeout() bool })(nil); errors.As(err, &ne) && ne.Timeout() { // net.Error, os.ErrDeadlineExceeded, failure
		return errTimeout
	}
	return other
}

// readReply reads the frame answering id (usually in one read); a length outside 8..maxFrame or bytes after it fail.
func (c *conn) readReply(id uint64) failure {
	if cap(c.buf) > 64<<10 {
		c.buf = make([]byte, 4096)
	}
	for have := 0; ; {
		n, err := c.c.Read(c.buf[have:])
		if ioFailure(err, "") == errTimeout {
			n, err = c.readNow(c.buf[have:])
		}
		if have += n; have >= 4 {
			size := binary.BigEndian.Uint32(c.buf)
			if total := 4 + int(size); size < 8 || size > c.maxFrame {
				return errFrameHeader
			} else if total > len(c.buf) {
				c.buf = append(c.buf[:have], make([]byte, total-have)...)
			} else if have > total {
				return errProtocol
			} else if have == total {
				switch {
				case decodeReply(c.buf[4:total], &c.r) != nil:
					return errMalformed
				case c.r.kind == wire.BodyError && c.r.id == 0:
					return errConnError
				case (c.r.kind == wire.BodyHelloAck) != (id == 0):
					return errProtocol
				case c.r.id != id:
					return errUnknownID
				}
				return ""
			}
		}
		if f := ioFailure(err, errConnLost); f != "" {
			return f
		}
	}
}

// readNow reads what the socket already holds, without waiting: Go's poller reports an expired
// deadline without reading, which would deny a descheduled request whose verdict came in time.
func (c *conn) readNow(b []byte) (n int, err error) {
	if cerr := c.raw.Control(func(fd uintptr) { n, err = syscall.Read(int(fd), b) }); err == syscall.EAGAIN || cerr != nil {
		return 0, os.ErrDeadlineExceeded // nothing received: the verdict is late
	} else if n <= 0 {
		return 0, cmp.Or(err, io.EOF)
	}
	c.late = true
	return n, nil
}

// filterRequest is one FilterRequest (maps sorted by name); the body never crosses the socket.
type filterRequest struct {
	ID                            uint64
	BudgetUS                      uint32
	Route, Method, Path, ClientIP string
	Filters                       []string
	BodySHA256                    []byte
	Query, Headers                map[string][]string
	PathParams                    map[string]string
}

// encoder builds length-prefixed frames (docs/protocol.md) in a reused builder, allocation-free once warm.
type encoder struct {
	b    *flatbuffers.Builder
	offs []flatbuffers.UOffsetT
	keys []string
}

func newEncoder() *encoder { return &encoder{b: flatbuffers.NewBuilder(2048)} }

func (e *encoder) hello() []byte {
	e.b.Reset()
	name := e.b.CreateString(clientName)
	wire.HelloStart(e.b)
	wire.HelloAddVersionMin(e.b, 1)
	wire.HelloAddVersionMax(e.b, 1)
	wire.HelloAddMaxFrameBytes(e.b, proposedMaxFrame)
	wire.HelloAddClientName(e.b, name)
	return e.finish(wire.BodyHello, wire.HelloEnd(e.b))
}

func (e *encoder) filterRequest(r *filterRequest) []byte {
	b := e.b
	b.Reset()
	route, filters, method, path := b.CreateString(r.Route), e.strings(r.Filters), b.CreateString(r.Method), b.CreateString(r.Path)
	query, mark := e.pairs(sortedKeys(e, r.Query), r.Query, nil), len(e.offs)
	for _, k := range sortedKeys(e, r.Headers) {
		name, values := b.CreateString(k), e.strings(r.Headers[k])
		wire.HeaderStart(b)
		wire.HeaderAddName(b, name)
		wire.HeaderAddValues(b, values)
		e.offs = append(e.offs, wire.HeaderEnd(b))
	}
	headers, clientIP, digest := e.vectorOf(mark), b.CreateString(r.ClientIP), b.CreateByteVector(r.BodySHA256)
	params := e.pairs(sortedKeys(e, r.PathParams), nil, r.PathParams)
	wire.FilterRequestStart(b)
	wire.FilterRequestAddId(b, r.ID)
	wire.FilterRequestAddBudgetUs(b, r.BudgetUS)
	wire.FilterRequestAddRoute(b, route)
	wire.FilterRequestAddFilters(b, filters)
	wire.FilterRequestAddMethod(b, method)
	wire.FilterRequestAddPath(b, path)
	wire.FilterRequestAddQuery(b, query)
	wire.FilterRequestAddHeaders(b, headers)
	wire.FilterRequestAddClientIp(b, clientIP)
	wire.FilterRequestAddPathParams(b, params)
	wire.FilterRequestAddBodySha256(b, digest)
	return e.finish(wire.BodyFilterRequest, wire.FilterRequestEnd(b))
}

func (e *encoder) strings(ss []string) flatbuffers.UOffsetT {
	mark := len(e.offs)
	for _, s := range ss {
		e.offs = append(e.offs, e.b.CreateString(s))
	}
	return e.vectorOf(mark)
}

// pairs builds QueryPair tables in key order: per value of each key of multi, or per key of single.
func (e *encoder) pairs(keys []string, multi map[string][]string, single map[string]string) flatbuffers.UOffsetT {
	mark := len(e.offs)
	for _, k := range keys {
		vs := multi[k]
		if multi == nil {
			vs = []string{single[k]}
		}
		for _, v := range vs {
			name, value := e.b.CreateString(k), e.b.CreateString(v)
			wire.QueryPairStart(e.b)
			wire.QueryPairAddName(e.b, name)
			wire.QueryPairAddValue(e.b, value)
			e.offs = append(e.offs, wire.QueryPairEnd(e.b))
		}
	}
	return e.vectorOf(mark)
}

func sortedKeys[V any](e *encoder, m map[string]V) []string {
	e.keys = slices.AppendSeq(e.keys[:0], maps.Keys(m))
	slices.Sort(e.keys)
	return e.keys
}

// vectorOf ends a vector of the offsets pushed on e.offs since mark and pops them.
func (e *encoder) vectorOf(mark int) flatbuffers.UOffsetT {
	n := len(e.offs) - mark
	e.b.StartVector(4, n, 4)
	for i := len(e.offs) - 1; i >= mark; i-- {
		e.b.PrependUOffsetT(e.offs[i])
	}
	e.offs = e.offs[:mark]
	return e.b.EndVector(n)
}

// finish wraps body in a Frame and prepends the length (a finished buffer needs no padding for it).
func (e *encoder) finish(typ wire.Body, body flatbuffers.UOffsetT) []byte {
	wire.FrameStart(e.b)
	wire.FrameAddBodyType(e.b, typ)
	wire.FrameAddBody(e.b, body)
	e.b.FinishWithFileIdentifier(wire.FrameEnd(e.b), []byte(fileIdentifier))
	n := len(e.b.FinishedBytes())
	e.b.PrependUint32(0)
	binary.BigEndian.PutUint32(e.b.Bytes[e.b.Head():], uint32(n))
	return e.b.Bytes[e.b.Head():]
}

// reply is one decoded daemon frame: views into the buffer it was decoded from.
type reply struct {
	kind    wire.Body
	id      uint64
	verdict wire.Verdict
	status  uint16
	code    wire.ErrorCode // Error
	resp    wire.FilterResponse
	ack     wire.HelloAck
}

// decodeReply reads every field used with flatc's accessors under recover() (a hostile offset
// panics in the bounds check), and checks header names, values and the content type.
func decodeReply(buf []byte, r *reply) (err error) {
	defer func() {
		if p := recover(); p != nil {
			e, _ := p.(failure) // a failure from check, else a bounds panic
			err = cmp.Or(e, errBounds)
		}
	}()
	var f wire.Frame
	var t flatbuffers.Table
	// Clipped: the accessors slice up to a slice's capacity, and nothing past buf may be read.
	if *r, buf = (reply{}), slices.Clip(buf); len(buf) < 8 || string(buf[4:8]) != fileIdentifier {
		return errShort
	} else if f.Init(buf, flatbuffers.GetUOffsetT(buf)); !f.Body(&t) {
		return errUnionType
	}
	switch r.kind = f.BodyType(); r.kind {
	case wire.BodyHelloAck:
		r.ack.Init(t.Bytes, t.Pos)
		_, _, _ = r.ack.Version(), r.ack.MaxFrameBytes(), r.ack.ServerName()
		return nil
	case wire.BodyError:
		var e wire.Error
		e.Init(t.Bytes, t.Pos)
		r.id, r.code = e.Id(), e.Code()
		return nil
	case wire.BodyFilterResponse:
		r.resp.Init(t.Bytes, t.Pos)
		r.id, r.verdict, r.status = r.resp.Id(), r.resp.Verdict(), r.resp.Status()
	default:
		return errUnionType
	}
	items := 0
	check := func(err error) { // panics out of decodeReply at the first bad item
		if items++; err != nil || items > maxReplyItems {
			panic(cmp.Or(err, error(errTooMany)))
		}
	}
	_ = r.resp.DenyBodyBytes()
	check(checkValue(r.resp.DenyContentType()))
	for i := range r.resp.RemoveHeadersLength() {
		check(checkToken(r.resp.RemoveHeaders(i)))
	}
	var h wire.Header
	deny := r.resp.DenyHeadersLength() // deny_headers, then set_headers
	for i := range deny + r.resp.SetHeadersLength() {
		if i < deny {
			r.resp.DenyHeaders(&h, i)
		} else {
			r.resp.SetHeaders(&h, i-deny)
		}
		check(checkToken(h.Name()))
		for j := range h.ValuesLength() {
			check(checkValue(h.Values(j)))
		}
	}
	return nil
}

// checkToken accepts an RFC 9110 token; checkValue rejects CR, LF and NUL (they split lines).
func checkToken(s []byte) error {
	if len(s) == 0 || bytes.ContainsFunc(s, func(c rune) bool { return !strings.ContainsRune(tokenChars, c) }) {
		return errHeaderName
	}
	return nil
}

func checkValue(s []byte) error {
	if bytes.ContainsAny(s, "\r\n\x00") {
		return errHeaderValue
	}
	return nil
}
