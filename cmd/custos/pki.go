package main

// `custos pki …`: the cluster CA without openssl. ca init makes the CA (key on
// a PKCS#11 token or in a passphrase-encrypted file), issue node signs a
// node's request from `custosd -csr`, issue client makes agent, auditor,
// operator and officer certificates, inspect says whom a certificate names.
// docs/pki.md is the guide.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/custos-eu/custos/hsm"
	"github.com/custos-eu/custos/internal/atomicfile"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/officer"
	"github.com/custos-eu/custos/keysvc/officer/officerhsm"
)

// Files of a CA directory (ca init --out DIR, --ca DIR).
const (
	pkiCACert = "ca.pem"        // the CA certificate: every node's and client's tls.ca / CUSTOS_CA
	pkiCAKey  = "ca.key"        // the CA key, PKCS #8 PEM encrypted with age (scrypt); or
	pkiCAURI  = "ca.pkcs11-uri" // the PKCS#11 URI of the CA key on a token
)

// Default lifetimes in days.
const (
	pkiCADays     = 5 * 365
	pkiNodeDays   = 365
	pkiClientDays = 30
)

// pkiWorkFactor is the scrypt work factor of a new CA key file; 0 is age's
// default (18). Tests lower it.
var pkiWorkFactor = 0

// pkiUsagef is a command line pki cannot run (exit 2); refusals of what
// the flags name are plain errors (exit 1).
func pkiUsagef(format string, a ...any) error { return usagef(format, a...) }

// pkiCommands are pki's subcommands, as its usage lists them.
var pkiCommands = []string{"ca init", "issue node", "issue client", "inspect"}

const pkiUsage = `usage: custos pki <command> [flags]

commands:
  ca init      --cluster NAME --out DIR [--days 1825] [--pkcs11-uri URI]
               make the cluster CA: DIR/ca.pem, and its key in DIR/ca.key (encrypted under a
               passphrase) or on a PKCS#11 token (DIR/ca.pkcs11-uri says where)
  issue node   --csr FILE --ca DIR [--days 365] [--out FILE]
               sign a node's request (custosd -config FILE -csr) into its tls.cert
  issue client --role agent|auditor|operator|officer --name NAME --region XX --ca DIR
               (--out DIR | --csr FILE) [--days 30]
               a client certificate: with --out, a new key too (DIR/ROLE-NAME.pem, .key 0600)
  inspect      CERT [--ca FILE] [--format text|json]
               the identity, fingerprint, issuer and validity of a certificate

The CA key's passphrase comes from the terminal, or from --passphrase-file FILE or
--passphrase-env NAME; never from a flag value. Exit status: 0 done, 2 usage error, 1 refused.`

func runPKICmd(_ context.Context, stdout io.Writer, args []string) error { return runPKI(stdout, args) }

func runPKI(stdout io.Writer, args []string) error {
	if len(args) == 0 {
		return pkiUsagef("a command is needed\n%s", pkiUsage)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, pkiUsage)
		return nil
	case "ca":
		if len(args) < 2 || args[1] != "init" {
			return pkiUsagef("want `custos pki ca init`\n%s", pkiUsage)
		}
		return runPKICAInit(stdout, args[2:])
	case "issue":
		if len(args) < 2 {
			return pkiUsagef("want `custos pki issue node` or `custos pki issue client`\n%s", pkiUsage)
		}
		switch args[1] {
		case "node":
			return runPKIIssueNode(stdout, args[2:])
		case "client":
			return runPKIIssueClient(stdout, args[2:])
		}
		return pkiUsagef("unknown certificate kind %q: want node or client", args[1])
	case "inspect":
		return runPKIInspect(stdout, args[1:])
	}
	return pkiUsagef("unknown pki command %q\n%s", args[0], pkiUsage)
}

// parsePKIFlags parses args as every command does (parseInterleaved), with
// the usage naming the whole command.
func parsePKIFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage of custos %s:\n", fs.Name())
		fs.PrintDefaults()
	}
	return parseInterleaved(fs, args)
}

func daysFlag(fs *flag.FlagSet, def int, what string) *int {
	return fs.Int("days", def, fmt.Sprintf("lifetime of the %s in days (cut short to end with the CA's)", what))
}

func checkDays(d int) (time.Duration, error) {
	if d <= 0 || d > 100*365 {
		return 0, pkiUsagef("--days %d: want 1 to %d", d, 100*365)
	}
	return time.Duration(d) * 24 * time.Hour, nil
}

// ---- ca init ----

func runPKICAInit(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("pki ca init", flag.ContinueOnError)
	cluster := fs.String("cluster", "", "the cluster's name, as in every node's config (required)")
	out := fs.String("out", "", "directory for ca.pem and the key file; created 0700 if missing (required)")
	days := daysFlag(fs, pkiCADays, "CA")
	uri := fs.String("pkcs11-uri", "", "make the CA key on this PKCS#11 token, e.g. 'pkcs11:token=custos-ca;object=custos-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/path/pin'")
	pf := addPassphraseFlags(fs)
	pos, err := parsePKIFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return pkiUsagef("unexpected arguments %q", pos)
	}
	if *cluster == "" || *out == "" {
		return pkiUsagef("--cluster NAME and --out DIR are required")
	}
	validity, err := checkDays(*days)
	if err != nil {
		return err
	}
	if err := (identity.Identity{Cluster: *cluster, Role: identity.RoleNode, Name: "x", Region: "FR"}).Validate(); err != nil {
		return pkiUsagef("--cluster %q: %v", *cluster, err)
	}
	var u *officer.PKCS11URI
	if *uri != "" {
		if u, err = officer.ParsePKCS11URI(*uri); err != nil {
			return pkiUsagef("--pkcs11-uri: %v", err)
		}
		if u.Object == "" {
			return pkiUsagef("--pkcs11-uri: name the key with object=LABEL")
		}
	}
	for _, f := range []string{pkiCACert, pkiCAKey, pkiCAURI} {
		if _, err := os.Lstat(filepath.Join(*out, f)); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite a CA (choose another --out)", filepath.Join(*out, f))
		}
	}
	var pass []byte
	if u == nil {
		if pass, err = pf.read(fmt.Sprintf("Passphrase for the new CA key (at least %d characters): ", officer.MinPassphraseLen), true); err != nil {
			return err
		}
		defer clear(pass)
		if len(pass) < officer.MinPassphraseLen {
			return fmt.Errorf("the passphrase is shorter than %d characters", officer.MinPassphraseLen)
		}
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}

	var ca *identity.CA
	var keyNote string
	if u != nil {
		tok, err := officerhsm.Open(u)
		if err != nil {
			return fmt.Errorf("open the CA token: %w", err)
		}
		defer tok.Close()
		key, err := tok.GenerateSigner(u.Object)
		if errors.Is(err, hsm.ErrKeyExists) {
			return fmt.Errorf("the token already holds a key labelled %q: refusing to reuse it for a new CA (choose another object=)", u.Object)
		}
		if err != nil {
			return fmt.Errorf("make the CA key on the token: %w", err)
		}
		if ca, err = identity.NewCAWithKey(*cluster, key, validity); err != nil {
			return err
		}
		if err := writeNewFile(filepath.Join(*out, pkiCAURI), []byte(u.String()+"\n"), 0o644); err != nil {
			return err
		}
		keyNote = fmt.Sprintf("on the PKCS#11 token, object %q (%s names it; signing needs the token and its PIN)", u.Object, pkiCAURI)
	} else {
		if ca, err = identity.NewCA(*cluster, validity); err != nil {
			return err
		}
		sealed, err := sealCAKey(ca, pass)
		if err != nil {
			return err
		}
		if err := writeNewFile(filepath.Join(*out, pkiCAKey), sealed, 0o600); err != nil {
			return err
		}
		keyNote = filepath.Join(*out, pkiCAKey) + " (mode 0600, encrypted under your passphrase; keep it and a backup off the nodes)"
	}
	if err := writeNewFile(filepath.Join(*out, pkiCACert), ca.CertPEM(), 0o644); err != nil {
		return err
	}
	c := ca.Certificate()
	fmt.Fprintf(stdout, "Created the CA of cluster %s in %s.\n", ca.Cluster(), *out)
	fmt.Fprintf(stdout, "  certificate  %s (give it to every node and client: tls.ca, CUSTOS_CA)\n", filepath.Join(*out, pkiCACert))
	fmt.Fprintf(stdout, "  key          %s\n", keyNote)
	fmt.Fprintf(stdout, "  fingerprint  %s\n", identity.Fingerprint(c))
	fmt.Fprintf(stdout, "  valid        %s to %s\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// sealCAKey returns the CA key as PKCS #8 PEM encrypted with age under pass.
func sealCAKey(ca *identity.CA, pass []byte) ([]byte, error) {
	var keyPEM bytes.Buffer
	if err := ca.WriteKeyPEM(&keyPEM); err != nil {
		return nil, err
	}
	defer clear(keyPEM.Bytes())
	r, err := age.NewScryptRecipient(string(pass))
	if err != nil {
		return nil, err
	}
	if pkiWorkFactor != 0 {
		r.SetWorkFactor(pkiWorkFactor)
	}
	var sealed bytes.Buffer
	w, err := age.Encrypt(&sealed, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(keyPEM.Bytes()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return sealed.Bytes(), nil
}

// writeNewFile creates name with perm and data, whole or not at all; it
// never overwrites.
func writeNewFile(name string, data []byte, perm os.FileMode) error {
	err := atomicfile.WriteNew(name, data, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite it", name)
	}
	return err
}

// openPKICA opens the CA in dir: its key from the token DIR/ca.pkcs11-uri
// names, or from DIR/ca.key with the passphrase. It refuses a CA that has
// expired. The caller calls close.
func openPKICA(dir string, pf *passphraseFlags) (ca *identity.CA, closeFn func(), err error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, pkiCACert))
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	closeFn = func() {}
	uriText, err := os.ReadFile(filepath.Join(dir, pkiCAURI))
	switch {
	case err == nil:
		u, err := officer.ParsePKCS11URI(strings.TrimSpace(string(uriText)))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, pkiCAURI), err)
		}
		tok, err := officerhsm.Open(u)
		if err != nil {
			return nil, nil, fmt.Errorf("open the CA token: %w", err)
		}
		key, err := tok.Signer(u.Object)
		if err != nil {
			tok.Close()
			return nil, nil, fmt.Errorf("the CA key %q on the token: %w", u.Object, err)
		}
		if ca, err = identity.OpenCA(certPEM, key); err != nil {
			tok.Close()
			return nil, nil, err
		}
		closeFn = func() { tok.Close() }
	case errors.Is(err, os.ErrNotExist):
		sealed, err := os.ReadFile(filepath.Join(dir, pkiCAKey))
		if err != nil {
			return nil, nil, fmt.Errorf("CA key: %w (and no %s)", err, pkiCAURI)
		}
		pass, err := pf.read("Passphrase of the CA key: ", false)
		if err != nil {
			return nil, nil, err
		}
		defer clear(pass)
		key, err := openCAKey(sealed, pass)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, pkiCAKey), err)
		}
		if ca, err = identity.OpenCA(certPEM, key); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, err
	}
	if err := ca.CheckUsable(time.Now()); err != nil {
		closeFn()
		return nil, nil, err
	}
	return ca, closeFn, nil
}

// openCAKey decrypts a key sealed by sealCAKey.
func openCAKey(sealed, pass []byte) (*ecdsa.PrivateKey, error) {
	id, err := age.NewScryptIdentity(string(pass))
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, errors.New("wrong passphrase (or not a CA key file)")
		}
		return nil, fmt.Errorf("not a CA key file: %w", err)
	}
	keyPEM, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	defer clear(keyPEM)
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("holds no PKCS #8 PRIVATE KEY")
	}
	defer clear(b.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA P-256", k)
	}
	return ec, nil
}

// ---- issue node ----

func runPKIIssueNode(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("pki issue node", flag.ContinueOnError)
	csrFile := fs.String("csr", "", "the node's certificate request, from `custosd -config FILE -csr` (required)")
	caDir := fs.String("ca", "", "the CA directory of `custos pki ca init` (required)")
	days := daysFlag(fs, pkiNodeDays, "node certificate")
	out := fs.String("out", "", "write the certificate to this new file (default: stdout)")
	pf := addPassphraseFlags(fs)
	pos, err := parsePKIFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return pkiUsagef("unexpected arguments %q", pos)
	}
	if *csrFile == "" || *caDir == "" {
		return pkiUsagef("--csr FILE and --ca DIR are required")
	}
	validity, err := checkDays(*days)
	if err != nil {
		return err
	}
	if *out != "" {
		if _, err := os.Lstat(*out); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite it", *out)
		}
	}
	csrPEM, err := os.ReadFile(*csrFile)
	if err != nil {
		return err
	}
	req, err := identity.ParseCSR(csrPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", *csrFile, err)
	}
	id := req.Identity
	if id.Role != identity.RoleNode {
		return fmt.Errorf("%s asks for %s, a %s identity, not a node: refused (clients get theirs from `custos pki issue client`)", *csrFile, id, id.Role)
	}
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return fmt.Errorf("%s names no DNS name or IP address for peers to dial: refused (make it with `custosd -config FILE -csr`)", *csrFile)
	}
	if err := identity.CheckNodeNames(req.DNSNames, req.IPAddresses); err != nil {
		return fmt.Errorf("%s: refused: %w", *csrFile, err)
	}
	ca, closeCA, err := openPKICA(*caDir, pf)
	if err != nil {
		return err
	}
	defer closeCA()
	if id.Cluster != ca.Cluster() {
		return fmt.Errorf("%s asks for %s, of cluster %q; this CA is for cluster %q: refused", *csrFile, id, id.Cluster, ca.Cluster())
	}
	certPEM, err := ca.IssueFor(id, req.PublicKey, identity.IssueOptions{DNSNames: req.DNSNames, IPAddresses: req.IPAddresses, Validity: validity})
	if err != nil {
		return err
	}
	return emitCert(stdout, *out, certPEM)
}

// emitCert writes certPEM to a new file out, or to stdout.
func emitCert(stdout io.Writer, out string, certPEM []byte) error {
	if out == "" {
		_, err := stdout.Write(certPEM)
		return err
	}
	if err := writeNewFile(out, certPEM, 0o644); err != nil {
		return err
	}
	c, err := parseCertPEM(certPEM)
	if err != nil {
		return err
	}
	id, _ := identity.FromCertificate(c)
	fmt.Fprintf(stdout, "Issued %s\n  certificate  %s\n  fingerprint  %s\n  valid until  %s\n",
		id, out, identity.Fingerprint(c), c.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// ---- issue client ----

// clientRoles are the roles issue client issues.
var clientRoles = []identity.Role{identity.RoleAgent, identity.RoleAuditor, identity.RoleOperator, identity.RoleOfficer}

func runPKIIssueClient(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("pki issue client", flag.ContinueOnError)
	role := fs.String("role", "", "agent, auditor, operator or officer (required)")
	name := fs.String("name", "", "the client's name: 1-63 of a-z, 0-9, '.', '_', '-' (an officer's: the officer name) (required)")
	region := fs.String("region", "", "the EU/EEA country the client runs in, e.g. FR (required)")
	caDir := fs.String("ca", "", "the CA directory of `custos pki ca init` (required)")
	out := fs.String("out", "", "make a new key and write DIR/ROLE-NAME.pem and DIR/ROLE-NAME.key (0600); DIR is created 0700 if missing")
	csrFile := fs.String("csr", "", "issue for the key of this request instead (made with identity.NewCSR for the same identity); the certificate goes to stdout")
	days := daysFlag(fs, pkiClientDays, "client certificate")
	pf := addPassphraseFlags(fs)
	pos, err := parsePKIFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return pkiUsagef("unexpected arguments %q", pos)
	}
	if *role == "" || *name == "" || *region == "" || *caDir == "" {
		return pkiUsagef("--role, --name, --region and --ca are required")
	}
	if (*out == "") == (*csrFile == "") {
		return pkiUsagef("give exactly one of --out DIR (a new key) and --csr FILE")
	}
	r := identity.Role(*role)
	allowed := false
	for _, c := range clientRoles {
		allowed = allowed || c == r
	}
	if !allowed {
		return pkiUsagef("--role %q: want agent, auditor, operator or officer (nodes: `custos pki issue node`)", *role)
	}
	validity, err := checkDays(*days)
	if err != nil {
		return err
	}
	// Check everything but the cluster before asking for the CA's passphrase.
	if err := (identity.Identity{Cluster: "x", Role: r, Name: *name, Region: *region}).Validate(); err != nil {
		return pkiUsagef("%v", err)
	}
	var req *identity.CSR
	var certFile, keyFile string
	if *csrFile != "" {
		csrPEM, err := os.ReadFile(*csrFile)
		if err != nil {
			return err
		}
		if req, err = identity.ParseCSR(csrPEM); err != nil {
			return fmt.Errorf("%s: %w", *csrFile, err)
		}
		if len(req.DNSNames) > 0 || len(req.IPAddresses) > 0 {
			return fmt.Errorf("%s asks for DNS names or IP addresses, which only node certificates carry: refused", *csrFile)
		}
	} else {
		certFile = filepath.Join(*out, *role+"-"+*name+".pem")
		keyFile = filepath.Join(*out, *role+"-"+*name+".key")
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Lstat(f); err == nil {
				return fmt.Errorf("%s already exists; refusing to overwrite it (move it away, or choose another --out)", f)
			}
		}
	}
	ca, closeCA, err := openPKICA(*caDir, pf)
	if err != nil {
		return err
	}
	defer closeCA()
	id := identity.Identity{Cluster: ca.Cluster(), Role: r, Name: *name, Region: *region}
	opts := identity.IssueOptions{Validity: validity}
	if req != nil {
		if req.Identity != id {
			return fmt.Errorf("%s asks for %s; the flags say %s: refused", *csrFile, req.Identity, id)
		}
		certPEM, err := ca.IssueFor(id, req.PublicKey, opts)
		if err != nil {
			return err
		}
		return emitCert(stdout, "", certPEM)
	}
	certPEM, keyPEM, err := ca.Issue(id, opts)
	if err != nil {
		return err
	}
	defer clear(keyPEM)
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	if err := identity.WriteKeyPair(certFile, keyFile, certPEM, keyPEM); err != nil {
		return err
	}
	c, err := parseCertPEM(certPEM)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Issued %s\n  certificate  %s\n  key          %s (mode 0600)\n  fingerprint  %s\n  valid until  %s\n",
		id, certFile, keyFile, identity.Fingerprint(c), c.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// ---- inspect ----

// certInfo is what inspect prints; its JSON form is --format json.
type certInfo struct {
	Kind        string    `json:"kind"` // "node", "client" or "ca"
	Identity    string    `json:"identity,omitempty"`
	Cluster     string    `json:"cluster"`
	Role        string    `json:"role,omitempty"`
	Name        string    `json:"name,omitempty"`
	Region      string    `json:"region,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	Serial      string    `json:"serial"`
	Issuer      string    `json:"issuer"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"`
	Expired     bool      `json:"expired"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	Verified    *bool     `json:"verified,omitempty"` // with --ca: the chain verifies
	VerifyError string    `json:"verify_error,omitempty"`
}

func runPKIInspect(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("pki inspect", flag.ContinueOnError)
	format := fs.String("format", "text", "text or json")
	caFile := fs.String("ca", "", "also check that this CA file (ca.pem) issued the certificate")
	pos, err := parsePKIFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return pkiUsagef("want one certificate file: custos pki inspect CERT [--ca FILE] [--format text|json]")
	}
	if *format != "text" && *format != "json" {
		return pkiUsagef("--format %q: want text or json", *format)
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	c, err := parseCertPEM(data)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	now := time.Now()
	info := certInfo{
		Fingerprint: identity.Fingerprint(c), Serial: c.SerialNumber.Text(16), Issuer: c.Issuer.CommonName,
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Expired: now.After(c.NotAfter),
		DaysLeft: int(math.Floor(c.NotAfter.Sub(now).Hours() / 24)), DNSNames: c.DNSNames,
	}
	for _, ip := range c.IPAddresses {
		info.IPAddresses = append(info.IPAddresses, ip.String())
	}
	if c.IsCA {
		info.Kind = "ca"
		cl, _ := strings.CutPrefix(c.Subject.CommonName, "custos ")
		info.Cluster, _ = strings.CutSuffix(cl, " CA")
	} else {
		id, err := identity.FromCertificate(c)
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		info.Kind = "client"
		if id.Role == identity.RoleNode {
			info.Kind = "node"
		}
		info.Identity, info.Cluster, info.Role, info.Name, info.Region = id.String(), id.Cluster, string(id.Role), id.Name, id.Region
	}
	if *caFile != "" {
		pool, err := identity.LoadCertPool(*caFile)
		if err != nil {
			return err
		}
		_, verr := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: now})
		ok := verr == nil
		info.Verified = &ok
		if verr != nil {
			info.VerifyError = verr.Error()
		}
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(info); err != nil {
			return err
		}
	} else {
		printCertInfo(stdout, info)
	}
	if info.Verified != nil && !*info.Verified {
		return fmt.Errorf("%s was not issued by %s (or is not valid now): %s", pos[0], *caFile, info.VerifyError)
	}
	return nil
}

func printCertInfo(w io.Writer, i certInfo) {
	if i.Kind == "ca" {
		fmt.Fprintf(w, "CA of cluster %s\n", i.Cluster)
	} else {
		fmt.Fprintf(w, "identity     %s\n", i.Identity)
		fmt.Fprintf(w, "cluster      %s\nrole         %s\nname         %s\nregion       %s\n", i.Cluster, i.Role, i.Name, i.Region)
	}
	fmt.Fprintf(w, "fingerprint  %s\n", i.Fingerprint)
	fmt.Fprintf(w, "serial       %s\n", i.Serial)
	fmt.Fprintf(w, "issuer       %s\n", i.Issuer)
	if len(i.DNSNames)+len(i.IPAddresses) > 0 {
		fmt.Fprintf(w, "names        %s\n", strings.Join(append(append([]string{}, i.DNSNames...), i.IPAddresses...), " "))
	}
	fmt.Fprintf(w, "valid        %s to %s\n", i.NotBefore.Format(time.RFC3339), i.NotAfter.Format(time.RFC3339))
	switch {
	case i.Expired:
		fmt.Fprintf(w, "days left    0 (EXPIRED)\n")
	default:
		fmt.Fprintf(w, "days left    %d\n", i.DaysLeft)
	}
	if i.Verified != nil {
		if *i.Verified {
			fmt.Fprintf(w, "verified     issued by the given CA, valid now\n")
		} else {
			fmt.Fprintf(w, "verified     NO: %s\n", i.VerifyError)
		}
	}
}

// parseCertPEM parses the first PEM certificate of data.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
