package identity_test

import (
	"crypto/tls"
	"os"
	"testing"

	"github.com/custos-eu/custos/keysvc/identity"
)

// BenchmarkIssue is one node certificate: a P-256 key pair and a signature.
func BenchmarkIssue(b *testing.B) {
	ca, err := identity.NewCA("prod", 0)
	if err != nil {
		b.Fatal(err)
	}
	id := identity.Identity{Cluster: "prod", Name: "node-1", Role: identity.RoleNode, Region: "FR"}
	for b.Loop() {
		if _, _, err := ca.Issue(id, localhost); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshake is a mutual TLS 1.3 handshake over 127.0.0.1 with
// X25519MLKEM768 and the identity checks on both ends, measured from the
// client (dial to first byte); "resumed" reuses a session ticket.
func BenchmarkHandshake(b *testing.B) {
	c := newCluster(b)
	ln := listen(b)
	srv := mustServer(b, c.node1, identity.RequireRoles(identity.RoleNode), identity.RequireHybridKeyExchange())
	for _, resumed := range []bool{false, true} {
		name := "full"
		if resumed {
			name = "resumed"
		}
		b.Run(name, func(b *testing.B) {
			cli := mustClient(b, c.node2, identity.RequireHybridKeyExchange())
			if resumed {
				cli.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				handshake(b, ln, srv, cli).ok(b)
			}
			for b.Loop() {
				r := handshake(b, ln, srv, cli)
				if r.serverErr != nil || r.clientErr != nil || r.client.DidResume != resumed {
					b.Fatalf("server %v, client %v, resumed %v", r.serverErr, r.clientErr, r.client.DidResume)
				}
			}
		})
	}
}

func BenchmarkFromCertificate(b *testing.B) {
	c := newCluster(b)
	certPEM, err := os.ReadFile(c.agent.Cert)
	if err != nil {
		b.Fatal(err)
	}
	cert := parsePEM(b, certPEM)
	for b.Loop() {
		if _, err := identity.FromCertificate(cert); err != nil {
			b.Fatal(err)
		}
	}
}
