package s3test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	s := Start(t)
	pid := s.Pid()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("versitygw pid %d not running: %v", pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().ListBuckets(ctx, nil); err != nil {
		t.Fatalf("ListBuckets: %v\n%s", err, s.LogTail(2000))
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("process not reaped after Stop")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pid %d still exists after Stop: %v", pid, err)
	}
}
