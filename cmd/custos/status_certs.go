package main

// The certificate part of `custos status`: how long each member's
// certificate, the CA that issued it, and the CLI's own certificate and CA
// have left, with a warning for any under certWarning.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"time"

	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
)

// certWarning: status warns of a certificate with less validity left.
const certWarning = 30 * 24 * time.Hour

// now is the clock status judges expiry by (tests move it).
var now = time.Now

// servedCerts is what a member presented in a TLS handshake: its
// certificate's and its verified root's NotAfter, or that its certificate
// has expired (the handshake fails then).
type servedCerts struct {
	node, ca time.Time
	expired  bool
}

// probeCerts makes one TLS handshake with the node at apiURL, as the CLI
// does for every request, and notes what it presented. A failed handshake
// other than for expiry gives the zero servedCerts: the health column says
// why the member is unreachable.
func probeCerts(ctx context.Context, tc *tls.Config, apiURL string) servedCerts {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return servedCerts{}
	}
	cfg := tc.Clone()
	cfg.ServerName = u.Hostname()
	d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{}}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		var ie x509.CertificateInvalidError
		if errors.As(err, &ie) && ie.Reason == x509.Expired {
			return servedCerts{expired: true}
		}
		return servedCerts{}
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	var out servedCerts
	if len(cs.PeerCertificates) > 0 {
		out.node = cs.PeerCertificates[0].NotAfter
	}
	if len(cs.VerifiedChains) > 0 {
		ch := cs.VerifiedChains[0]
		out.ca = ch[len(ch)-1].NotAfter
	}
	return out
}

// certLife is one certificate status reports on.
type certLife struct {
	what     string // "node-1's certificate", "the cluster CA", ...
	notAfter time.Time
	expired  bool // known expired without a NotAfter (a refused handshake)
	err      error
}

// certificates lists the certificates to report on: each member's (as it
// presented it), the CA that verified them, and the CLI's own certificate
// and CA file.
func certificates(members []client.Member, health map[string]memberHealth, files identity.TLSFiles) []certLife {
	var out []certLife
	cas := map[time.Time]bool{}
	for _, m := range members {
		c := health[m.ID].certs
		switch {
		case c.expired:
			out = append(out, certLife{what: m.ID + "'s certificate", expired: true})
		case !c.node.IsZero():
			out = append(out, certLife{what: m.ID + "'s certificate", notAfter: c.node})
		}
		if !c.ca.IsZero() && !cas[c.ca] {
			cas[c.ca] = true
			out = append(out, certLife{what: "the cluster CA (as the members' certificates chain to it)", notAfter: c.ca})
		}
	}
	if files.Cert != "" {
		out = append(out, fileCerts("your client certificate ("+files.Cert+")", files.Cert, true)...)
	}
	if files.CA != "" {
		for _, c := range fileCerts("the CA in "+files.CA, files.CA, false) {
			if !cas[c.notAfter] || c.err != nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// fileCerts reads the certificates of a PEM file (only the first when
// first is set).
func fileCerts(what, path string, first bool) []certLife {
	b, err := os.ReadFile(path)
	if err != nil {
		return []certLife{{what: what, err: err}}
	}
	var out []certLife
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return append(out, certLife{what: what, err: err})
		}
		out = append(out, certLife{what: what, notAfter: c.NotAfter})
		if first {
			break
		}
	}
	if len(out) == 0 {
		return []certLife{{what: what, err: errors.New("no certificate in it")}}
	}
	return out
}

// printCertificates writes a warning line for each certificate with less
// than certWarning left at t, else one line naming the soonest to expire.
func printCertificates(w io.Writer, certs []certLife, t time.Time) {
	if len(certs) == 0 {
		return
	}
	// Unreadable and expired first, then by NotAfter.
	key := func(c certLife) time.Time {
		if c.err != nil || c.expired {
			return time.Time{}
		}
		return c.notAfter
	}
	sort.SliceStable(certs, func(i, j int) bool { return key(certs[i]).Before(key(certs[j])) })
	var warned bool
	for _, c := range certs {
		left := c.notAfter.Sub(t)
		switch {
		case c.err != nil:
			fmt.Fprintf(w, "WARNING: %s: cannot read it: %v\n", c.what, c.err)
		case c.expired || left <= 0:
			fmt.Fprintf(w, "WARNING: %s has EXPIRED%s: renew it now\n", c.what, since(c.notAfter))
		case left < certWarning:
			fmt.Fprintf(w, "WARNING: %s expires in %s (%s): renew it\n", c.what, days(left), c.notAfter.UTC().Format("2006-01-02 15:04 UTC"))
		default:
			continue
		}
		warned = true
	}
	if !warned {
		c := certs[0]
		fmt.Fprintf(w, "Certificates: none expires within %d days (the soonest: %s, in %s)\n",
			int(certWarning.Hours()/24), c.what, days(c.notAfter.Sub(t)))
	}
}

func since(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " (on " + t.UTC().Format("2006-01-02 15:04 UTC") + ")"
}

// days is d in whole days, or hours under two days.
func days(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
