package main

// `custos officer …`: a security officer's commands, and the passphrase handling
// they share. Each subcommand is one line in officerCommands; keygen and pubkey are
// here.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

// officerCommands are the subcommands of `custos officer`, in the order usage lists them.
var officerCommands = []command{
	{"keygen", "create your officer key (DIR is created if missing): keygen --out DIR --name NAME [--classical ecdsa-p256|ed25519] [--pkcs11-uri URI]", runOfficerKeygen},
	{"pubkey", "print the public key bundle of a key file: pubkey --key FILE", runOfficerPubkey},
	{"propose", "propose a ceremony: propose OPERATION [flags] [--expires 24h]; operations: officer.add, officer.remove, quorum.set, regions.set, node.add, node.remove, kek.create, kek.policy, kek.rotate, kek.disable, kek.enable, kek.destroy, legal_hold.set, legal_hold.release, escrow.recover, identity.revoke (propose -h lists their flags)", runOfficerPropose},
	{"approve", "review and approve a proposal: approve ID (escrow.recover: sends your opened escrow share)", runOfficerApprove},
	{"list", "list proposals and their status", runOfficerList},
	{"show", "show what a proposal does, its approvals and status: show ID", runOfficerShow},
	{"verify-share", "check your escrow share of a KEK version: verify-share --kek ID [--version N]", runOfficerVerifyShare},
}

func officerUsage() string {
	return groupUsage("officer", officerCommands, 12, "\nPassphrases come from the terminal, or for automation from --passphrase-file FILE or --passphrase-env NAME; never from a flag value.")
}

func runOfficerCmd(ctx context.Context, stdout io.Writer, args []string) error {
	return runGroup(ctx, stdout, "officer", officerCommands, args, officerUsage())
}

// keygenWorkFactor is the scrypt work factor of new key files; 0 is the officer
// package's default. Tests lower it.
var keygenWorkFactor = 0

func runOfficerKeygen(_ context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("officer keygen", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write NAME.key and NAME.pub into, created (0700) if missing (required)")
	name := fs.String("name", "", "your officer id: 1-63 characters of a-z, 0-9, '.', '_', '-' (required)")
	classical := fs.String("classical", string(officer.ECDSAP256), "classical signing algorithm: ecdsa-p256 or ed25519 (ecdsa-p256 with --pkcs11-uri)")
	uri := fs.String("pkcs11-uri", "", "keep the classical key on this PKCS#11 token, e.g. 'pkcs11:token=officer-alice;object=custos-officer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/path/pin'")
	pf := addPassphraseFlags(fs)
	if err := parseOfficerFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || *name == "" {
		return usagef("--out DIR and --name NAME are required")
	}
	c := officer.Config{Name: *name, Classical: officer.Alg(*classical), PKCS11URI: *uri, WorkFactor: keygenWorkFactor}
	// Refuse what Keygen would refuse before asking for a passphrase.
	if err := officer.ValidateName(c.Name); err != nil {
		return usagef("--name: %w", err)
	}
	if c.Classical != officer.ECDSAP256 && c.Classical != officer.Ed25519 {
		return usagef("--classical %q: want ecdsa-p256 or ed25519", *classical)
	}
	var u *officer.PKCS11URI
	if c.PKCS11URI != "" {
		var err error
		if u, err = officer.ParsePKCS11URI(c.PKCS11URI); err != nil {
			return usagef("--pkcs11-uri: %w", err)
		}
	}
	keyPath, pubPath := officer.KeyFiles(*out, c.Name)
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite it (move it away or choose another --out)", p)
		}
	}
	passphrase, err := pf.read(fmt.Sprintf("Passphrase for the new key of officer %s (at least %d characters): ", c.Name, officer.MinPassphraseLen), true)
	if err != nil {
		return err
	}
	defer clear(passphrase)
	created, err := makeKeyDir(*out)
	if err != nil {
		return err
	}
	pub, err := officerhsm.Keygen(*out, c, passphrase)
	if err != nil {
		if created {
			_ = os.Remove(*out) // only if still empty
		}
		return err
	}
	where := "classical key in the key file"
	if u != nil {
		token := fmt.Sprintf("token %q", u.Token)
		if u.SlotID != nil {
			token = fmt.Sprintf("the token in slot %d", *u.SlotID)
		}
		where = fmt.Sprintf("classical key on PKCS#11 %s, object %q: signing needs the token and its PIN", token, u.Object)
	}
	fmt.Fprintf(stdout, "Created the officer key of %s.\n", pub.Name())
	fmt.Fprintf(stdout, "  private key  %s  (encrypted under your passphrase; keep it and a backup safe)\n", keyPath)
	fmt.Fprintf(stdout, "  public key   %s\n", pubPath)
	fmt.Fprintf(stdout, "  signing      %s + ML-DSA-65 (%s)\n", pub.Alg(), where)
	fmt.Fprintf(stdout, "  fingerprint  %s\n", pub.Fingerprint())
	fmt.Fprintf(stdout, "\nNext: give %s.pub to the cluster operator, who records it at genesis (or the officers, in an\n", pub.Name())
	fmt.Fprintf(stdout, "officer-add ceremony). Confirm the fingerprint above with them over another channel — read it\n")
	fmt.Fprintf(stdout, "aloud, in person or by phone — and check it is the one the ceremony shows before anyone approves.\n")
	return nil
}

// makeKeyDir creates the --out directory (and its parents), mode 0700, when it
// does not exist, and reports whether it did. An existing directory is used as
// it is.
func makeKeyDir(dir string) (created bool, err error) {
	if _, err := os.Stat(dir); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("--out %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("--out %s: %w", dir, err)
	}
	return true, nil
}

func runOfficerPubkey(_ context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("officer pubkey", flag.ContinueOnError)
	key := fs.String("key", "", "your key file, NAME.key (required)")
	pf := addPassphraseFlags(fs)
	if err := parseOfficerFlags(fs, args); err != nil {
		return err
	}
	if *key == "" {
		return usagef("--key FILE is required")
	}
	s, err := loadOfficerKey(*key, pf)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "%s\n", s.Public().Marshal())
	return nil
}

// loadOfficerKey asks for the passphrase (see passphraseFlags) and opens the key file.
func loadOfficerKey(path string, pf *passphraseFlags) (*officer.Signer, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	passphrase, err := pf.read(fmt.Sprintf("Passphrase for %s: ", path), false)
	if err != nil {
		return nil, err
	}
	defer clear(passphrase)
	return officerhsm.Load(path, passphrase)
}

// parseOfficerFlags parses args, refusing a passphrase given as a flag value (which
// would show in the process list and the shell history) with a message that says
// what to do instead, and any positional argument.
func parseOfficerFlags(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		flagName, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (flagName == "passphrase" || flagName == "password" || flagName == "pass") {
			// Name the flag only: its value may be the passphrase.
			return usagef("--%s: a passphrase is never taken as a flag value; use --passphrase-file FILE, --passphrase-env NAME, or type it when asked", flagName)
		}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	return nil
}

// passphraseFlags say where a command reads the officer's passphrase: a file or an
// environment variable (for automation), else the terminal.
type passphraseFlags struct{ file, env string }

func addPassphraseFlags(fs *flag.FlagSet) *passphraseFlags {
	p := &passphraseFlags{}
	fs.StringVar(&p.file, "passphrase-file", "", "read the passphrase from this file (one trailing newline is ignored) instead of the terminal")
	fs.StringVar(&p.env, "passphrase-env", "", "read the passphrase from the environment variable with this name instead of the terminal")
	return p
}

// errNoTTY: there is no terminal to ask on.
var errNoTTY = errors.New("no terminal to ask for the passphrase: use --passphrase-file FILE or --passphrase-env NAME")

// readTTYPassphrase asks on the terminal without echo. Tests replace it.
var readTTYPassphrase = func(prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, errNoTTY
		}
		fmt.Fprint(os.Stderr, prompt)
		defer fmt.Fprintln(os.Stderr)
		return term.ReadPassword(int(os.Stdin.Fd()))
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return nil, errNoTTY
	}
	fmt.Fprint(tty, prompt)
	defer fmt.Fprintln(tty)
	return term.ReadPassword(int(tty.Fd()))
}

// read returns the passphrase. From the terminal, with confirm, it asks twice and
// refuses a mismatch. The caller clears the result.
func (p *passphraseFlags) read(prompt string, confirm bool) ([]byte, error) {
	switch {
	case p.file != "" && p.env != "":
		return nil, usagef("give only one of --passphrase-file and --passphrase-env")
	case p.file != "":
		b, err := os.ReadFile(p.file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		if fi, err := os.Stat(p.file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			slog.Warn("the passphrase file is readable by group or others", "passphrase_file", p.file, "mode", fi.Mode().Perm().String())
		}
		pass := bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		if len(pass) == 0 {
			clear(b)
			return nil, fmt.Errorf("passphrase file %s is empty", p.file)
		}
		return pass, nil
	case p.env != "":
		v, ok := os.LookupEnv(p.env)
		if !ok || v == "" {
			return nil, fmt.Errorf("environment variable %s (--passphrase-env) is unset or empty", p.env)
		}
		return []byte(v), nil
	}
	pass, err := readTTYPassphrase(prompt)
	if err != nil {
		return nil, err
	}
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm {
		again, err := readTTYPassphrase("Again, to confirm: ")
		if err != nil {
			clear(pass)
			return nil, err
		}
		defer clear(again)
		if !bytes.Equal(pass, again) {
			clear(pass)
			return nil, errors.New("the two passphrases differ; nothing was written")
		}
	}
	return pass, nil
}
