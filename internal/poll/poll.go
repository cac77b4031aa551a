// Package poll repeats a check until it passes: the one polling loop behind
// the waits of development clusters and tests.
package poll

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Until calls cond, then again every interval, until it returns nil, returns
// an error marked with Stop, or ctx ends. It returns nil, the error Stop
// marked, or ctx's error with cond's last error in its message.
func Until(ctx context.Context, interval time.Duration, cond func() error) error {
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var s stopError
		if errors.As(err, &s) {
			return s.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// Stop marks err as final: Until returns it at once instead of polling on.
func Stop(err error) error { return stopError{err} }

type stopError struct{ error }

func (s stopError) Unwrap() error { return s.error }
