package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// subcommandNames are the subcommands of each command group, from the
// groups' own tables, so that a new subcommand is walked by TestExitCodes.
func subcommandNames() map[string][]string {
	names := map[string][]string{}
	for _, c := range officerCommands {
		names["officer"] = append(names["officer"], c.name)
	}
	for _, c := range kekCommands {
		names["kek"] = append(names["kek"], c.name)
	}
	for _, c := range operatorCommands {
		names["operator"] = append(names["operator"], c.name)
	}
	for _, c := range devCommands {
		names["dev"] = append(names["dev"], c.name)
	}
	for _, c := range auditCommands {
		names["audit"] = append(names["audit"], c.name)
	}
	for _, c := range backupCommands {
		names["backup"] = append(names["backup"], c.name)
	}
	names["pki"] = pkiCommands
	return names
}

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runStdio(context.Background(), stdio{in: strings.NewReader(""), out: &out, err: &errb}, args)
	return code, out.String(), errb.String()
}

// TestExitCodes walks every command and subcommand in the command tables:
// help exits 0 with usage on stdout and nothing on stderr; an unknown flag
// exits 2 naming it, with usage on stderr and nothing on stdout. A command
// whose help shows subcommands must be a group listed in subcommandNames.
func TestExitCodes(t *testing.T) {
	t.Setenv("CUSTOS_ENV", "")
	groups := subcommandNames()
	var lines [][]string
	for _, c := range commands {
		lines = append(lines, []string{c.name})
		for _, sub := range groups[c.name] {
			lines = append(lines, append([]string{c.name}, strings.Fields(sub)...))
		}
	}
	for _, line := range lines {
		name := strings.Join(line, " ")
		t.Run(name, func(t *testing.T) {
			for _, h := range []string{"--help", "-h"} {
				code, out, errs := runArgs(t, append(line, h)...)
				if code != 0 || errs != "" || !strings.Contains(strings.ToLower(out), "usage") {
					t.Errorf("custos %s %s: exit %d, stdout %q, stderr %q; want 0, usage on stdout, no stderr", name, h, code, out, errs)
				}
				if len(line) == 1 && strings.Contains(out, "usage: custos "+name+" <command>") && groups[name] == nil {
					t.Errorf("custos %s has subcommands: list them in subcommandNames", name)
				}
			}
			code, out, errs := runArgs(t, append(line, "--no-such-flag")...)
			if len(line) == 1 && groups[name] != nil {
				// A group reads its first argument as a subcommand.
				if code != 2 || out != "" || !strings.Contains(errs, `unknown `+name+` command "--no-such-flag"`) {
					t.Errorf("custos %s --no-such-flag: exit %d, stdout %q, stderr %q; want 2 and unknown command", name, code, out, errs)
				}
				return
			}
			if code != 2 || out != "" || !strings.Contains(errs, "flag provided but not defined: -no-such-flag") || !strings.Contains(errs, "-help") && !strings.Contains(strings.ToLower(errs), "usage") {
				t.Errorf("custos %s --no-such-flag: exit %d, stdout %q, stderr %q; want 2, the flag named and usage on stderr", name, code, out, errs)
			}
		})
	}
}

// TestHelpAndUsageErrors: the top level and every group take help, -h
// and --help (exit 0, stdout), and refuse no command or an unknown one
// with exit 2 and usage on stderr.
func TestHelpAndUsageErrors(t *testing.T) {
	for _, group := range append([]string{""}, "officer", "kek", "operator", "dev", "audit", "backup") {
		prefix := strings.Fields(group)
		for _, h := range []string{"help", "-h", "--help"} {
			code, out, errs := runArgs(t, append(prefix, h)...)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: custos") {
				t.Errorf("custos %s %s: exit %d, stdout %q, stderr %q; want 0 and usage on stdout", group, h, code, out, errs)
			}
		}
		code, out, errs := runArgs(t, append(prefix, "frobnicate")...)
		if code != 2 || out != "" || !strings.Contains(errs, `command "frobnicate"`) || !strings.Contains(errs, "usage: custos") {
			t.Errorf("custos %s frobnicate: exit %d, stdout %q, stderr %q; want 2, usage on stderr", group, code, out, errs)
		}
		if group == "" {
			continue
		}
		code, out, errs = runArgs(t, prefix...)
		if code != 2 || out != "" || !strings.Contains(errs, "usage: custos") {
			t.Errorf("custos %s: exit %d, stdout %q, stderr %q; want 2, usage on stderr", group, code, out, errs)
		}
	}
}

// TestMissingArgumentIsUsageError: a missing required flag or argument
// exits 2; a refusal of what the command was asked to do exits 1.
func TestMissingArgumentIsUsageError(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"wrap"}, 2, "--kek ID is required"},
		{[]string{"wrap", "--kek", "k", "extra"}, 2, "unexpected arguments"},
		{[]string{"wrap", "--kek", "k", "--batch", "b.json", "--in", "dek"}, 2, "drop --in"},
		{[]string{"unwrap", "--batch", "b.json", "--in", "x", "--out", dir + "/k"}, 2, "drop --in"},
		{[]string{"unwrap", "--in", "x", "--format", "json"}, 2, "give --out FILE"},
		{[]string{"rewrap", "--format", "xml"}, 2, `invalid value "xml" for flag -format: "xml": want text or json`},
		{[]string{"kek", "show"}, 2, "want ID"},
		{[]string{"audit", "verify", "--trust", "x"}, 2, "want PACK"},
		{[]string{"officer", "approve"}, 2, "is required"},
		{[]string{"officer", "keygen", "--passphrase", "x"}, 2, "never taken as a flag value"},
		{[]string{"dev", "up", "--nodes", "many"}, 2, "invalid value"},
		{[]string{"backup", "list"}, 2, "--policy FILE is required"},
		{[]string{"audit", "verify", dir + "/no.pack", "--trust", dir + "/no.trust"}, 1, "no such file"},
		{[]string{"officer", "pubkey", "--key", dir + "/no.key"}, 1, "no such file"},
	} {
		code, out, errs := runArgs(t, tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("custos %s: exit %d, stdout %q, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, out, errs, tc.code, tc.want)
		}
	}
}

// decodeJSON decodes out, which must be one JSON document, into v.
func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("not the JSON expected: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", out)
	}
}
