package poll_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/poll"
)

func TestUntil(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := poll.Until(ctx, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Until = %v after %d calls, want nil after 3", err, n)
	}

	final := errors.New("process exited")
	n = 0
	if err := poll.Until(ctx, time.Millisecond, func() error { n++; return poll.Stop(final) }); err != final || n != 1 {
		t.Fatalf("Until with Stop = %v after %d calls, want the marked error after 1", err, n)
	}

	ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err := poll.Until(ctx, time.Millisecond, func() error { return errors.New("still down") })
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "context deadline exceeded (last: still down)" {
		t.Fatalf("Until past the deadline = %v", err)
	}
}
