package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The demo is what a newcomer runs first: it must complete and tell the story.
func TestDemo(t *testing.T) {
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
			t.Fatal("softhsm2-util not found and CUSTOS_REQUIRE_SOFTHSM is set")
		}
		t.Skip("softhsm2-util not installed")
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), &out, &errOut, []string{"demo", "--dir", t.TempDir()}); code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	for _, want := range []string{
		"Recovered data key matches the original: yes",
		"classification=public instead: refused",
		"node-3 opening its share: refused",
		"single remaining share cannot unwrap: refused",
		"nothing can unwrap: refused",
		"Demo complete.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), &out, &errOut, []string{"frobnicate"}); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("stderr: %s", errOut.String())
	}
}
