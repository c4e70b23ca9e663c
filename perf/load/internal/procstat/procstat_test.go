package procstat

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestParseHandlesAwkwardNames(t *testing.T) {
	line := "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 123 0 0"
	v, err := parse(line)
	if err != nil || v != 3.25 {
		t.Fatalf("got %v, %v; want 3.25 s", v, err)
	}
	if _, err := parse("garbage"); err == nil {
		t.Fatal("garbage accepted")
	}
}

// procstat must agree with getrusage(RUSAGE_SELF) to within a few clock ticks. The spin loop is
// bounded by CPU time, not wall time, so a busy machine only makes the test slower.
func TestAgreesWithGetrusage(t *testing.T) {
	rus := func() float64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	start := rus()
	deadline := time.Now().Add(20 * time.Second)
	for rus()-start < 0.3 && time.Now().Before(deadline) {
	}
	want := rus()
	got, err := CPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := got - want; d > 0.05 || d < -0.05 {
		t.Fatalf("/proc says %.3f s, getrusage %.3f s", got, want)
	}
	if v, _ := CPUSeconds(0); v != 0 {
		t.Fatal("pid 0 must read as untracked")
	}
}

func TestParseSwitches(t *testing.T) {
	v, n := parseSwitches("Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n")
	if v != 120 || n != 7 {
		t.Fatalf("got %d, %d; want 120, 7", v, n)
	}
}

// A thread that sleeps is counted: the process's sleeps grow by at least the number of sleeps of
// its locked thread.
func TestSwitchesCountsSleeps(t *testing.T) {
	s0, _, err := Switches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := 0; i < 20; i++ {
			syscall.Nanosleep(&syscall.Timespec{Nsec: 1e6}, nil)
		}
		close(done)
	}()
	<-done
	s1, _, err := Switches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s1-s0 < 20 {
		t.Fatalf("sleeps grew by %d over 20 sleeps of 1 ms", s1-s0)
	}
	if s, p, _ := Switches(0); s != 0 || p != 0 {
		t.Fatal("pid 0 must read as untracked")
	}
}
