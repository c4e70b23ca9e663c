package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"bitbucket.org/simpaisa/simpaisa-plugin-filter-bridge/internal/wire"
)

// A verdict that reached the socket before the request's goroutine ran again is applied even
// when that goroutine runs past the deadline: Go's poller reports an expired deadline without
// reading, so a descheduled request would otherwise be denied with its verdict in the buffer.
func TestVerdictInBufferAfterDeadlineIsRead(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path).start() // answers allow at once
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	c, f := b.pool.get(context.Background(), time.Now().Add(time.Second))
	if f != "" {
		t.Fatal(f)
	}
	deadline := time.Now().Add(2 * time.Millisecond)
	c.nextID++
	if _, err := c.write(c.enc.filterRequest(&filterRequest{ID: c.nextID, Route: "r"}), deadline); err != nil {
		t.Fatal(err)
	}
	// The goroutine is "descheduled" past its deadline while the daemon answers.
	for p.requests.Load() == 0 || time.Now().Before(deadline.Add(5*time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond) // the reply is written right after the request is counted
	if f := c.readReply(c.nextID); f != "" || c.r.verdict != wire.VerdictAllow || !c.late {
		t.Fatalf("readReply = %q (late %v), want the allow found in the buffer", f, c.late)
	}
	b.pool.put(c, true)

}

// A reply not yet received is not waited for: after the deadline the read gives up at once.
func TestNoVerdictInBufferAfterDeadlineDenies(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {} // never answers
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	c, _ := b.pool.get(context.Background(), time.Now().Add(time.Second))
	c.nextID++
	if _, err := c.write(c.enc.filterRequest(&filterRequest{ID: c.nextID, Route: "r"}), time.Now().Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Millisecond)
	if f := c.readReply(c.nextID); f != errTimeout || c.late {
		t.Fatalf("readReply = %q (late %v), want errTimeout", f, c.late)
	}
	b.pool.put(c, false)
	b2 := e.bridge(path, map[string]interface{}{"deadline": "1ms"})
	mustDeny(t, 503)(b2.modify(newRequest("x")))
	if m := e.p.counters(); m["payments/deadline_missed"] != 1 || m["payments/read_after_deadline"] != 0 || m["payments/failed"] != 1 {
		t.Errorf("counters = %v; want one deadline_missed (and failed), no read_after_deadline", m)
	}
}

// A new connection whose HELLO outlasts one request's deadline denies that request; it is no
// sign that the daemon is down, so the pool stays up and the next request passes.
func TestHelloTimeoutDoesNotMarkTheDaemonDown(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	var slow atomic.Bool
	p.onHello = func(pc *peerConn, h *wire.Hello) {
		if slow.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		pc.sendAck(pc.p.ack)
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	b.pool.flush() // the next request opens a connection
	slow.Store(true)
	if _, f := b.pool.roundTrip(context.Background(), &filterRequest{Route: "r"}, time.Now().Add(2*time.Millisecond)); f != errTimeout {
		t.Fatalf("roundTrip = %q, want errTimeout", f)
	}
	if e := b.pool.lastErr.Load(); e != nil {
		t.Fatalf("a HELLO slower than one request's deadline marked the daemon down: %s", *e)
	}
	slow.Store(false)
	mustPass(t)(b.modify(newRequest("x")))
}

// Timeouts in a row shortly after a reply (a busy node, not a stopped daemon) leave the pool up.
func TestTimeoutsAfterARecentReplyKeepThePoolUp(t *testing.T) {
	path := socketPath(t)
	p := newPeer(t, path)
	p.onRequest = func(pc *peerConn, r *wire.FilterRequest) {
		if string(r.Route()) != "slow" {
			pc.reply(&Response{ID: r.Id(), Verdict: VerdictAllow})
		}
	}
	p.start()
	e := newEnv(t)
	b := e.bridge(path, nil)
	waitReady(t, b.pool)
	mustPass(t)(b.modify(newRequest("x")))
	start := time.Now()
	for i := 0; i < stallLimit+4; i++ {
		if _, f := b.pool.roundTrip(context.Background(), &filterRequest{Route: "slow"}, time.Now().Add(500*time.Microsecond)); f != errTimeout {
			t.Fatalf("request %d: %q, want errTimeout", i, f)
		}
	}
	if time.Since(start) > stallTime/2 {
		t.Skipf("the timeouts took %v, too close to stallTime on this machine", time.Since(start))
	}
	if e := b.pool.lastErr.Load(); e != nil {
		t.Fatalf("%d timeouts within %v of a reply marked the daemon down: %s", stallLimit+4, time.Since(start), *e)
	}
}
