package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/codec"
)

// Connection tuning. These are protocol mechanics rather than per-route policy, so they are
// constants; the per-route deadline bounds how long any request waits regardless of them.
const (
	minBackoff   = 5 * time.Millisecond  // first reconnect delay after a failure
	maxBackoff   = 50 * time.Millisecond // cap: the daemon is retried at least every 50 ms
	dialTimeout  = 50 * time.Millisecond
	helloTimeout = 250 * time.Millisecond // HelloAck must arrive within this after connecting
	writeTimeout = 100 * time.Millisecond // a daemon that reads nothing for this long is dropped
	// stallLimit consecutive request timeouts with no frame received in between mark the
	// connection as stalled (e.g. a SIGSTOPped daemon): it is closed so that requests fail
	// fast while the supervisor reconnects, instead of each one waiting out its deadline.
	stallLimit = 16
	// proposedMaxFrame is the max_frame_bytes the bridge offers in Hello; the daemon answers
	// min(this, its own). It must exceed maxBodyLimit plus headers.
	proposedMaxFrame = 16 << 20
	// defaultInFlight applies when the daemon advertises max_in_flight = 0 (no limit); it
	// also caps what the daemon may ask for, and sizes the write queue.
	defaultInFlight = 4096
	clientName      = "simpaisa-plugin-filter-bridge/1"
	pooledBufMax    = 64 << 10 // read buffers larger than this are not kept in the pool
	// maxHelloAckFrame bounds the answer to Hello (a HelloAck or an Error is a few dozen
	// bytes), so a confused peer cannot make the handshake allocate megabytes.
	maxHelloAckFrame = 64 << 10
)

// failure is why a request could not get a verdict. The texts are fixed and carry no
// request data, so they are safe to log.
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

var (
	errDown        = &failure{"daemon not connected"}
	errTimeout     = &failure{"deadline exceeded waiting for the daemon"}
	errCancelled   = &failure{"request context ended"}
	errOverloaded  = &failure{"too many requests in flight on the daemon connection"}
	errFrameLimit  = &failure{"request frame above the negotiated max_frame_bytes"}
	errConnLost    = &failure{"daemon connection closed before the reply"}
	errMalformed   = &failure{"malformed frame from the daemon"}
	errUnknownID   = &failure{"reply for a request id that was never sent"}
	errConnError   = &failure{"daemon reported a connection error"}
	errProtocol    = &failure{"unexpected frame type from the daemon"}
	errWrite       = &failure{"write to the daemon failed"}
	errStalled     = &failure{"daemon stopped answering"}
	errEncode      = &failure{"request could not be encoded"}
	errShutdown    = &failure{"plugin context cancelled"}
	errFrameHeader = &failure{"frame length from the daemon out of range"}
	errReplyError  = &failure{"daemon answered with an error"}
)

// call is one request's slot while it waits for a reply. Calls are pooled; ch has capacity
// one so that whoever completes the call (the reader, or a session teardown) never blocks.
type call struct {
	ch    chan struct{}
	timer *time.Timer
	reply codec.Reply
	buf   *[]byte // owns the bytes reply points into; returned to bufPool by release
	err   *failure
}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{ch: make(chan struct{}, 1), timer: t}
}}

func (c *call) release() {
	if c.buf != nil {
		putBuf(c.buf)
	}
	c.buf, c.err, c.reply = nil, nil, codec.Reply{}
	callPool.Put(c)
}

// outFrame is an encoded frame queued for the writer. Once queued it belongs to the writer,
// which returns it to framePool after writing: the requester may have given up by then, and
// its encoder must not be reused while the bytes are still unsent.
type outFrame struct {
	enc *codec.Encoder
	b   []byte
}

var framePool = sync.Pool{New: func() any { return &outFrame{enc: codec.NewEncoder(4096)} }}

func putFrame(f *outFrame) {
	f.b = nil
	if f.enc.Cap() <= 256<<10 {
		framePool.Put(f)
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf(n int) *[]byte {
	p := bufPool.Get().(*[]byte)
	if cap(*p) < n {
		*p = make([]byte, n)
	}
	*p = (*p)[:n]
	return p
}

func putBuf(p *[]byte) {
	if cap(*p) <= pooledBufMax {
		bufPool.Put(p)
	}
}

// daemonConn is the one shared connection to a filterd socket. Every endpoint configured with
// the same socket path uses it. It owns exactly one supervisor goroutine (connect, HELLO,
// read replies, reconnect with backoff) and, while connected, one writer goroutine.
type daemonConn struct {
	path string
	ctx  context.Context
	log  func() Logger
	sess atomic.Pointer[session] // nil while not connected: requests fail at once
	done chan struct{}           // closed when the supervisor has exited

	connects atomic.Uint64 // successful HELLO exchanges, for tests and logs
	lastErr  atomic.Pointer[string]
}

// session is one established connection (after a successful HELLO).
type session struct {
	c           net.Conn
	maxFrame    uint32
	maxInFlight int
	wq          chan *outFrame
	quit        chan struct{} // closed by close()
	timeouts    atomic.Int32  // consecutive request timeouts without a frame from the daemon
	lastID      atomic.Uint64 // highest id handed out

	mu      sync.Mutex
	closed  bool
	reason  *failure // why the session closed (first close wins)
	pending map[uint64]*call
}

func newDaemonConn(ctx context.Context, path string, log func() Logger) *daemonConn {
	d := &daemonConn{path: path, ctx: ctx, log: log, done: make(chan struct{})}
	go d.supervise()
	return d
}

// ready reports nil once the HELLO exchange has succeeded and the connection is up.
func (d *daemonConn) ready() error {
	if d.sess.Load() != nil {
		return nil
	}
	if p := d.lastErr.Load(); p != nil {
		return fmt.Errorf("filterd at %s not connected: %s", d.path, *p)
	}
	return fmt.Errorf("filterd at %s not connected yet", d.path)
}

// supervise is the one background loop of a connection: it connects, serves the session
// until it fails, and reconnects with a backoff that doubles from minBackoff to maxBackoff.
// It ends when the plugin context is cancelled.
func (d *daemonConn) supervise() {
	defer close(d.done)
	// A panic in the loop itself (outside serveOnce, which recovers on its own) restarts the
	// loop rather than ending it: without this goroutine the connection would stay down.
	for !d.superviseLoop() {
	}
}

// superviseLoop runs until the plugin context ends (true) or a panic escapes (false).
func (d *daemonConn) superviseLoop() (stopped bool) {
	defer func() {
		if r := recover(); r != nil {
			stopped = d.ctx.Err() != nil
			if !stopped {
				time.Sleep(maxBackoff)
			}
		}
	}()
	backoff := minBackoff
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var lastLogged string
	var lastLogAt time.Time
	for d.ctx.Err() == nil {
		helloOK, err := d.serveOnce()
		if helloOK {
			backoff = minBackoff
		}
		if d.ctx.Err() != nil {
			break
		}
		if err != nil {
			msg := err.Error()
			d.lastErr.Store(&msg)
			// Log changes of state, not every retry: a daemon that stays down would otherwise
			// produce twenty lines a second.
			if msg != lastLogged || time.Since(lastLogAt) > 10*time.Second {
				d.log().Error(line(logPrefix, "filterd connection", d.path, "down:", msg))
				lastLogged, lastLogAt = msg, time.Now()
			}
		}
		timer.Reset(backoff)
		select {
		case <-timer.C:
		case <-d.ctx.Done():
			timer.Stop()
		}
		backoff = min(backoff*2, maxBackoff)
	}
	d.log().Info(line(logPrefix, "filterd connection", d.path, "closed: plugin context cancelled"))
	return true
}

// serveOnce runs one connection from dial to failure. helloOK reports whether it got as far
// as a successful HELLO (which resets the backoff).
func (d *daemonConn) serveOnce() (helloOK bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in connection loop: %s", panicText(r))
		}
	}()
	dialer := net.Dialer{Timeout: dialTimeout}
	c, err := dialer.DialContext(d.ctx, "unix", d.path)
	if err != nil {
		return false, dialError(err)
	}
	stop := context.AfterFunc(d.ctx, func() { c.Close() })
	defer stop()
	defer c.Close()

	ack, err := d.hello(c)
	if err != nil {
		return false, err
	}
	s := &session{
		c:           c,
		maxFrame:    min(ack.MaxFrameBytes, proposedMaxFrame),
		maxInFlight: defaultInFlight,
		quit:        make(chan struct{}),
		pending:     make(map[uint64]*call, 64),
	}
	if ack.MaxInFlight > 0 && ack.MaxInFlight < defaultInFlight {
		s.maxInFlight = int(ack.MaxInFlight)
	}
	s.wq = make(chan *outFrame, s.maxInFlight)
	go s.writeLoop()
	d.connects.Add(1)
	d.sess.Store(s)
	// Runs on every exit, a panic included: the session must never outlive its reader, or
	// requests would wait out their deadline on a connection nobody reads.
	defer func() {
		d.sess.CompareAndSwap(s, nil)
		s.close(errConnLost)
	}()
	d.lastErr.Store(nil)
	d.log().Info(line(logPrefix, "filterd connection", d.path, "ready: server", string(ack.ServerName),
		"max_frame_bytes", s.maxFrame, "max_in_flight", s.maxInFlight))

	reason := d.readLoop(s)
	d.sess.CompareAndSwap(s, nil)
	s.close(reason)
	// Report the first reason: when a requester dropped a stalled connection, or the writer
	// failed, the reader only saw the socket close under it.
	s.mu.Lock()
	if s.reason != nil {
		reason = s.reason
	}
	s.mu.Unlock()
	return true, reason
}

func dialError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return fmt.Errorf("dial: %v", op.Err)
	}
	return fmt.Errorf("dial: %v", err)
}

// hello sends Hello and waits (at most helloTimeout) for the HelloAck.
func (d *daemonConn) hello(c net.Conn) (codec.Reply, error) {
	var ack codec.Reply
	if err := c.SetDeadline(time.Now().Add(helloTimeout)); err != nil {
		return ack, err
	}
	f := framePool.Get().(*outFrame)
	defer putFrame(f)
	b, err := f.enc.Hello(proposedMaxFrame, clientName)
	if err != nil {
		return ack, err
	}
	if _, err := c.Write(b); err != nil {
		return ack, fmt.Errorf("hello: write: %v", err)
	}
	var hdr [4]byte
	buf, ferr := readFrame(c, &hdr, maxHelloAckFrame)
	if ferr != nil {
		return ack, fmt.Errorf("hello: %v", ferr)
	}
	defer putBuf(buf)
	if err := codec.Decode(*buf, &ack); err != nil {
		return ack, fmt.Errorf("hello: %v", err)
	}
	switch {
	case ack.Kind == codec.KindError:
		return ack, fmt.Errorf("hello refused: %s (%d)", errorCodeName(ack.Code), ack.Code)
	case ack.Kind != codec.KindHelloAck:
		return ack, errors.New("hello: first reply is not a HelloAck")
	case ack.Version != codec.ProtocolVersion:
		return ack, fmt.Errorf("hello: daemon chose protocol version %d, bridge speaks %d", ack.Version, codec.ProtocolVersion)
	case ack.MaxFrameBytes < 64:
		return ack, fmt.Errorf("hello: daemon max_frame_bytes %d is unusable", ack.MaxFrameBytes)
	}
	// The ack's byte slices point into buf, which is released on return; only the server
	// name is used after this, so copy it.
	ack.ServerName = append([]byte(nil), ack.ServerName...)
	return ack, c.SetDeadline(time.Time{})
}

// readFrame reads one length-prefixed frame, refusing a length above max before reading
// the body. The returned buffer comes from bufPool.
func readFrame(r io.Reader, hdr *[4]byte, max uint32) (*[]byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > max {
		return nil, errFrameHeader
	}
	buf := getBuf(int(n))
	if _, err := io.ReadFull(r, *buf); err != nil {
		putBuf(buf)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// readLoop reads replies and hands each to its waiting call, until the connection fails.
// It returns the failure that every still-pending request gets.
func (d *daemonConn) readLoop(s *session) *failure {
	var hdr [4]byte
	var r codec.Reply
	for {
		buf, err := readFrame(s.c, &hdr, s.maxFrame)
		if err != nil {
			if err == errFrameHeader {
				return errFrameHeader
			}
			return errConnLost
		}
		s.timeouts.Store(0)
		replyHook()
		if err := codec.Decode(*buf, &r); err != nil {
			putBuf(buf)
			d.log().Warning(line(logPrefix, "filterd connection", d.path, "reply rejected:", err.Error()))
			return errMalformed
		}
		if r.Kind == codec.KindHelloAck {
			putBuf(buf)
			return errProtocol
		}
		if r.ID == 0 {
			// Only Error frames reach here with id 0: the daemon is failing the connection.
			putBuf(buf)
			d.log().Warning(line(logPrefix, "filterd connection", d.path, "error from daemon:", errorCodeName(r.Code)))
			return errConnError
		}
		if r.ID > s.lastID.Load() {
			putBuf(buf)
			return errUnknownID
		}
		s.mu.Lock()
		c, ok := s.pending[r.ID]
		if ok {
			delete(s.pending, r.ID)
		}
		s.mu.Unlock()
		if !ok {
			// A late reply for a request that already timed out: expected, dropped.
			putBuf(buf)
			continue
		}
		c.reply, c.buf = r, buf
		c.ch <- struct{}{}
	}
}

// replyHook lets tests make the reader panic; it does nothing in production.
var replyHook = func() {}

// writeLoop is the session's only writer: frames are written whole, one at a time.
func (s *session) writeLoop() {
	defer func() {
		if r := recover(); r != nil {
			s.close(errWrite)
		}
	}()
	for {
		select {
		case f := <-s.wq:
			err := s.c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err == nil {
				_, err = s.c.Write(f.b)
			}
			putFrame(f)
			if err != nil {
				s.close(errWrite)
				return
			}
		case <-s.quit:
			return
		}
	}
}

// close fails every pending call with reason and closes the socket. Idempotent.
func (s *session) close(reason *failure) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.reason = reason
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, c := range pending {
		c.err = reason
		c.ch <- struct{}{}
	}
	close(s.quit)
	s.c.Close()
}

// roundTrip sends req and waits for its reply until deadline or until ctx ends. On success
// the returned call holds the reply; the caller must release it. On failure the call has
// already been released.
func (d *daemonConn) roundTrip(ctx context.Context, req *codec.Request, deadline time.Time) (*call, *failure) {
	s := d.sess.Load()
	if s == nil {
		if d.ctx.Err() != nil {
			return nil, errShutdown
		}
		return nil, errDown
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, errTimeout
	}
	req.ID = s.lastID.Add(1)
	req.BudgetUS = uint32(min(wait.Microseconds(), 1<<32-1))

	f := framePool.Get().(*outFrame)
	b, err := f.enc.FilterRequest(req)
	if err != nil {
		putFrame(f)
		return nil, errEncode
	}
	if len(b)-4 > int(s.maxFrame) {
		putFrame(f)
		return nil, errFrameLimit
	}
	f.b = b

	c := callPool.Get().(*call)
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		putFrame(f)
		callPool.Put(c)
		return nil, errDown
	case len(s.pending) >= s.maxInFlight:
		s.mu.Unlock()
		putFrame(f)
		callPool.Put(c)
		return nil, errOverloaded
	}
	s.pending[req.ID] = c
	s.mu.Unlock()

	select {
	case s.wq <- f:
	default:
		// The writer is this far behind only if the daemon stopped reading; fail now.
		putFrame(f)
		if s.forget(req.ID, c) {
			callPool.Put(c)
			return nil, errOverloaded
		}
		return nil, d.abandon(c, errOverloaded)
	}

	c.timer.Reset(time.Until(deadline))
	var fail *failure
	select {
	case <-c.ch:
		stopTimer(c.timer)
		if c.err != nil {
			fail = c.err
			c.release()
			return nil, fail
		}
		return c, nil
	case <-c.timer.C:
		fail = errTimeout
		if s.timeouts.Add(1) >= stallLimit {
			d.sess.CompareAndSwap(s, nil)
			s.close(errStalled)
		}
	case <-ctx.Done():
		stopTimer(c.timer)
		fail = errCancelled
	}
	if s.forget(req.ID, c) {
		callPool.Put(c)
		return nil, fail
	}
	return nil, d.abandon(c, fail)
}

// forget removes a call that is still pending. It reports false when the reader or a
// teardown has already claimed the call, which then is (or will be) signalled.
func (s *session) forget(id uint64, c *call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[id] == c {
		delete(s.pending, id)
		return true
	}
	return false
}

// abandon waits for the signal of a call that was claimed concurrently (it is sent without
// blocking, right after the claim) and releases it, so the pooled call carries nothing over.
func (d *daemonConn) abandon(c *call, fail *failure) *failure {
	<-c.ch
	c.release()
	return fail
}

// stopTimer stops t and drains a value that fired concurrently, so that Reset starts clean
// under both the pre- and post-Go 1.23 timer semantics (the host binary's go.mod decides).
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// panicText describes a recovered panic for the log: runtime errors and string panics (fixed
// texts in this code and in the flatbuffers runtime) verbatim, capped; any other value only by
// its type, since its formatting could carry request data.
func panicText(r any) string {
	var s string
	switch v := r.(type) {
	case error:
		s = v.Error()
	case string:
		s = v
	default:
		return fmt.Sprintf("%T", r)
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

var errorCodeNames = [...]string{"Unspecified", "Malformed", "UnknownRoute", "UnknownFilter",
	"DeadlineExceeded", "Overloaded", "VersionMismatch", "FrameTooLarge", "HelloRequired",
	"ShuttingDown", "Internal"}

func errorCodeName(code uint16) string {
	if int(code) < len(errorCodeNames) {
		return errorCodeNames[code]
	}
	return "Unknown"
}
