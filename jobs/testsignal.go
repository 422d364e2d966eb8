package jobs

import "time"

// testingTB is the part of testing.TB a signal needs; naming it here keeps the
// testing package out of the daemon's binary.
type testingTB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// testSignal lets a test wait for something a background loop did, instead of
// sleeping. Its zero value does nothing, so production code signals for free.
type testSignal[T any] struct {
	ch chan T
}

func (s *testSignal[T]) init(tb testingTB) {
	tb.Helper()
	s.ch = make(chan T, 1000)
}

func (s *testSignal[T]) signal(v T) {
	if s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
	}
}

func (s *testSignal[T]) waitOrTimeout(tb testingTB) T {
	tb.Helper()
	select {
	case v := <-s.ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for a test signal")
		var zero T
		return zero
	}
}
