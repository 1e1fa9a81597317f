//go:build linux

package netpoll

import (
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// serveOnce runs l.Serve in a goroutine, sending accepted fds to the
// returned channel (the test closes them) and errors to t.
func serveOnce(t *testing.T, l *Listener) <-chan int {
	t.Helper()
	fds := make(chan int, 16)
	go l.Serve(func(fd int) { fds <- fd }, func(err error) { t.Errorf("accept: %v", err) })
	return fds
}

func TestListenPort0(t *testing.T) {
	base := countFDs(t)
	l, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	if a := l.Addr(); a == nil || a.Port == 0 || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("Addr = %v, want 127.0.0.1 with a real port", a)
	}
	fds := serveOnce(t, l)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fd := recv(t, fds, "an accepted fd")
	if sa, err := unix.Getpeername(fd); err != nil || SockaddrToTCP(sa).String() != nc.LocalAddr().String() {
		t.Fatalf("accepted fd's peer = %v, %v; want %v", sa, err, nc.LocalAddr())
	}
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Fatal("accepted fd is blocking")
	}
	unix.Close(fd)
	nc.Close()

	done := make(chan struct{})
	go func() { l.Close(); l.Wait(); close(done) }()
	recv(t, done, "Close+Wait")
	if n := countFDs(t); n != base {
		t.Fatalf("%d fds open after Close+Wait, %d before Listen", n, base)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("the port still accepts after Close+Wait")
	}
	l.Close() // idempotent, after Wait too
	l.Wait()
}

func TestListenerCloseWithoutServe(t *testing.T) {
	base := countFDs(t)
	l, err := Listen("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n := countFDs(t); n != base {
		t.Fatalf("%d fds open after Close, %d before Listen", n, base)
	}
	done := make(chan struct{})
	go func() {
		l.Serve(func(fd int) { t.Error("accepted after Close") }, func(err error) { t.Error(err) })
		l.Wait()
		close(done)
	}()
	recv(t, done, "Serve and Wait after Close to return")
}

func TestListenerServeTwice(t *testing.T) {
	l, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close(); l.Wait() }()
	fds := serveOnce(t, l)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	unix.Close(recv(t, fds, "an accepted fd")) // the first Serve is running
	var got error
	l.Serve(func(int) { t.Error("second Serve accepted") }, func(err error) { got = err })
	if got == nil {
		t.Fatal("a second Serve returned without an error")
	}
}

// TestListenDualStack: an empty host listens on IPv6 and IPv4 at once (or on
// IPv4 alone on a host without IPv6).
func TestListenDualStack(t *testing.T) {
	l, err := Listen(":0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close(); l.Wait() }()
	fds := serveOnce(t, l)
	port := l.Addr().Port
	addrs := []string{net.JoinHostPort("127.0.0.1", itoa(port))}
	if l.Addr().IP.To4() == nil {
		addrs = append(addrs, net.JoinHostPort("::1", itoa(port)))
	}
	for _, a := range addrs {
		nc, err := net.Dial("tcp", a)
		if err != nil {
			if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENETUNREACH) {
				continue // no ::1 here
			}
			t.Fatalf("dial %s: %v", a, err)
		}
		unix.Close(recv(t, fds, "an accepted fd on "+a))
		nc.Close()
	}
}

func itoa(n int) string { return (&net.TCPAddr{Port: n}).String()[1:] }

// TestAcceptBackoff drives Serve through the accept seam: EMFILE makes it
// report the error and pause 10 ms doubling to 1 s, a success resets the
// pause, and Close cuts a pause short.
func TestAcceptBackoff(t *testing.T) {
	l, err := Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fail := 0 // accept calls left to fail with EMFILE
	var pauses []time.Duration
	realAccept := l.accept
	l.accept = func(fd int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			return -1, unix.EMFILE
		}
		return realAccept(fd)
	}
	longPause := false
	inLongPause := make(chan struct{}, 1)
	l.pause = func(d time.Duration) bool {
		mu.Lock()
		pauses = append(pauses, d)
		long := longPause
		mu.Unlock()
		if long {
			inLongPause <- struct{}{}
			return l.sleep(time.Hour) // only Close ends it
		}
		return true
	}
	accepted := make(chan int, 4)
	var emfiles int
	var emu sync.Mutex
	go l.Serve(func(fd int) { accepted <- fd }, func(err error) {
		if errors.Is(err, unix.EMFILE) {
			emu.Lock()
			emfiles++
			emu.Unlock()
			return
		}
		t.Errorf("accept: %v", err)
	})

	mu.Lock()
	fail = 8
	mu.Unlock()
	c1, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	unix.Close(recv(t, accepted, "the connection after 8 EMFILEs"))

	mu.Lock()
	fail = 2
	mu.Unlock()
	c2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	unix.Close(recv(t, accepted, "the connection after 2 more EMFILEs"))

	ms := time.Millisecond
	want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, 10 * ms, 20 * ms}
	mu.Lock()
	got := slices.Clone(pauses)
	mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
	emu.Lock()
	if emfiles != 10 {
		t.Errorf("onError saw %d EMFILEs, want 10", emfiles)
	}
	emu.Unlock()

	// A pause in progress ends with Close.
	mu.Lock()
	fail, longPause = 1, true
	mu.Unlock()
	c3, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	recv(t, inLongPause, "a pause")
	done := make(chan struct{})
	go func() { l.Close(); l.Wait(); close(done) }()
	recv(t, done, "Close+Wait during a backoff pause")
}
