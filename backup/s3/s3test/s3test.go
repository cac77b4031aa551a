// Package s3test starts a real S3-compatible server (versitygw, posix backend
// with versioning, so Object Lock works) on 127.0.0.1 for tests, and stops it
// by pid with bounded waits.
//
// versitygw is looked up in PATH, then in $GOBIN and $(go env GOPATH)/bin
// (`make tools` installs the pinned version there). When it is missing the test
// is skipped, or fails when CUSTOS_REQUIRE_SOFTHSM=1 ("require integration
// tools", as `make test` sets it).
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/custos-eu/custos/backup/s3/versitygw"
)

// Version is the versitygw release the tests are written against (the
// Makefile installs it).
const Version = versitygw.Version

// RequireEnv, set to "1", turns a missing versitygw into a test failure.
const RequireEnv = "CUSTOS_REQUIRE_SOFTHSM"

// Region is the region the server is started with.
const Region = versitygw.Region

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	killTimeout  = 5 * time.Second
)

// Server is a running versitygw.
type Server struct {
	// Endpoint is the server's URL (http://127.0.0.1:PORT).
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Region is the signing region.
	Region string
	// Dir holds data, versions, iam and the server log.
	Dir string
	// Binary is the versitygw executable used.
	Binary string

	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error
	once    sync.Once
}

// FindBinary returns the path of versitygw (see package versitygw).
func FindBinary() (string, error) { return versitygw.FindBinary() }

// BinaryVersion returns the module version recorded in a Go binary ("" if unknown).
func BinaryVersion(path string) string { return versitygw.BinaryVersion(path) }

// Start starts versitygw in a fresh temporary directory and stops it when the
// test ends. It skips the test when versitygw is missing, unless RequireEnv=1.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := FindBinary()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s=1 and %v", RequireEnv, err)
		}
		t.Skipf("skipping S3 integration test: %v", err)
	}
	if v := BinaryVersion(bin); v != Version {
		t.Logf("warning: %s is versitygw %q, tests are written against %s", bin, v, Version)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(bin, dir, attempt)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("stopping versitygw: %v", err)
				}
			})
			return s
		}
		lastErr = err
	}
	t.Fatalf("starting versitygw: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(bin, base string, attempt int) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, "gw"+strconv.Itoa(attempt))
	for _, sub := range []string{"iam", "versions", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	s := &Server{
		Endpoint:  "http://127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "custos-test-access",
		SecretKey: "custos-test-secret-key-0123456789",
		Region:    Region,
		Dir:       dir,
		Binary:    bin,
		logPath:   filepath.Join(dir, "versitygw.log"),
		done:      make(chan struct{}),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	// A bare exec (no shell), so cmd.Process.Pid is versitygw's own pid.
	cmd := exec.Command(bin,
		"--port", "127.0.0.1:"+strconv.Itoa(port),
		"--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", s.Region,
		"--iam-dir", filepath.Join(dir, "iam"),
		"posix", "--versioning-dir", filepath.Join(dir, "versions"),
		filepath.Join(dir, "data"))
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Stdin = nil
	// Own process group, so a ^C to `go test` does not race our shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := s.waitReady(); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("%w; log:\n%s", err, s.LogTail(2000))
	}
	return s, nil
}

// waitReady polls the endpoint until it answers HTTP, the process exits, or
// startTimeout passes.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("versitygw (pid %d) exited during start-up: %v", s.cmd.Process.Pid, s.waitErr)
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil // any HTTP answer (403 unsigned) means it serves
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("versitygw (pid %d) not answering on %s after %v", s.cmd.Process.Pid, s.Endpoint, startTimeout)
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM to the server's pid, waits up to 10s, then SIGKILLs it
// and waits up to 5s more. Safe to call more than once.
func (s *Server) Stop() error {
	var err error
	s.once.Do(func() {
		select {
		case <-s.done:
			return
		default:
		}
		pid := s.cmd.Process.Pid
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			return
		case <-time.After(stopTimeout):
		}
		_ = s.cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(killTimeout):
			err = fmt.Errorf("versitygw pid %d did not exit after SIGKILL within %v", pid, killTimeout)
		}
	})
	return err
}

// LogTail returns up to n final bytes of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// Client returns an S3 client for the server with the root credentials and
// path-style addressing.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// CreateLockedBucket creates a bucket with Object Lock enabled (and so
// versioning) and fails the test if it cannot.
func (s *Server) CreateLockedBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{
		Bucket:                     aws.String(name),
		ObjectLockEnabledForBucket: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("create bucket %q with Object Lock: %v\nserver log:\n%s", name, err, s.LogTail(2000))
	}
}

// CreateBucket creates a plain bucket (no Object Lock).
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %q: %v", name, err)
	}
}
