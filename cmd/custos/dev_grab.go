// custos dev grab-shares: plays a compromised node of a dev cluster. With the
// node's own HSM key and certificate it asks every other node, over the peer
// channel, for its share of a KEK version for an "activation" that no client
// request backs. Every peer refuses and logs the refusal; the command
// reports what each answered and fails if any share left a node.

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/custos-eu/custos/hsm/pkcs11"
	"github.com/custos-eu/custos/keysvc/devcluster"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/nodecfg"
	"github.com/custos-eu/custos/keysvc/nodetls"
	"github.com/custos-eu/custos/keysvc/peer"
)

// ErrShareLeaked: a peer released a share to the grab.
var ErrShareLeaked = errors.New("a peer released its share without a client request")

func devGrabShares(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("dev grab-shares", flag.ContinueOnError)
	dir := fs.String("dir", ".custos-dev", "the dev cluster's directory")
	as := fs.String("as", "node-1", "the node to play")
	kekID := fs.String("kek", devcluster.DemoKEK, "KEK id")
	version := fs.Uint("version", 1, "KEK version")
	activation := fs.Uint64("activation", 1, "log index to present as the activation")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := devcluster.Load(*dir)
	if err != nil {
		return err
	}
	cfg, err := nodecfg.Load(c.ConfigPath(*as))
	if err != nil {
		return err
	}
	if cfg.HSM.SoftHSMConf != "" {
		os.Setenv("SOFTHSM2_CONF", cfg.HSM.SoftHSMConf)
	}
	tok, err := pkcs11.Open(pkcs11.Config{Module: cfg.HSM.Module, TokenLabel: cfg.HSM.TokenLabel, PINFile: cfg.HSM.PINFile, PINEnv: cfg.HSM.PINEnv})
	if err != nil {
		return fmt.Errorf("%s's token: %w", *as, err)
	}
	defer tok.Close()
	signer, err := nodetls.TLSSigner(tok)
	if err != nil {
		return err
	}
	cl, err := identity.ClientConfig(identity.TLSFiles{Cert: cfg.TLS.Cert, CA: cfg.TLS.CA, Signer: signer})
	if err != nil {
		return err
	}
	// The raft listener's peer channel, with its strict TLS.
	tc := &tls.Config{Certificates: cl.Certificates, RootCAs: cl.RootCAs, MinVersion: tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}, NextProtos: []string{"custos-peer/1"}}
	cli := peer.NewClient(func(ctx context.Context, addr string) (peer.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		conf := tc.Clone()
		conf.ServerName = host
		conn, err := (&tls.Dialer{Config: conf}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tlsConn := conn.(*tls.Conn)
		id, err := identity.FromCertificate(tlsConn.ConnectionState().PeerCertificates[0])
		if err != nil {
			conn.Close()
			return nil, err
		}
		return grabConn{tlsConn, id.Name}, nil
	})
	defer cli.Close()
	leaked := 0
	for _, n := range c.Nodes {
		if n.ID == *as {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var resp peer.ReleaseResponse
		err := cli.Call(cctx, n.ID, "127.0.0.1:"+strconv.Itoa(n.RaftPort), "release",
			peer.ReleaseRequest{KEKID: *kekID, Version: uint32(*version), Activation: *activation, Context: map[string]string{"dataset": "payroll"}}, &resp)
		cancel()
		if err == nil {
			leaked++
			fmt.Fprintf(w, "  %s released share %d\n", n.ID, resp.Index)
			continue
		}
		fmt.Fprintf(w, "  %s refused: %v\n", n.ID, err)
	}
	if leaked > 0 {
		return fmt.Errorf("%w (%d)", ErrShareLeaked, leaked)
	}
	return nil
}

type grabConn struct {
	*tls.Conn
	id string
}

func (c grabConn) NodeID() string { return c.id }
