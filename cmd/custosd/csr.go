// The node's certificate request: its TLS key made inside its HSM on first
// use, and a CSR for the cluster CA to sign.

package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"

	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/nodecfg"
	"github.com/custos-eu/custos/keysvc/nodetls"
)

// printCSR writes to w a PEM certificate request for the node's identity and
// names, signed by its TLS key (nodetls.LabelTLS), which it makes in the HSM
// if the token has none. It opens only the token: no raft, no listener.
func printCSR(cfg *nodecfg.Config, log *slog.Logger, w io.Writer) error {
	dnsNames, ips, err := nodeNames(cfg)
	if err != nil {
		return &configError{err}
	}
	tok, err := openToken(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := tok.Close(); cerr != nil {
			log.Warn("custosd: closing the HSM token", slog.Any("err", cerr))
		}
	}()
	signer, err := nodetls.TLSSigner(tok)
	if err != nil {
		return err
	}
	id := identity.Identity{Cluster: cfg.Cluster, Name: cfg.NodeID, Role: identity.RoleNode, Region: cfg.Region}
	csr, err := identity.NewCSR(signer, id, dnsNames, ips)
	if err != nil {
		return &configError{err}
	}
	log.Info("custosd: certificate request made with the node's HSM TLS key",
		slog.String("identity", id.String()), slog.Any("dns", dnsNames), slog.Any("ip", ips))
	_, err = w.Write(csr)
	return err
}

// nodeNames are the DNS names and IP addresses the node's certificate needs:
// the hosts of its API and raft advertise addresses, which clients and
// other nodes dial. A loopback address brings "localhost" along, as the
// development certificates always had it.
func nodeNames(cfg *nodecfg.Config) (dnsNames []string, ips []net.IP, err error) {
	for _, a := range []struct{ setting, addr string }{
		{"api.advertise", cfg.API.Advertise}, {"raft.advertise", cfg.Raft.Advertise},
	} {
		host, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %q: %w", a.setting, a.addr, err)
		}
		ip := net.ParseIP(host)
		switch {
		case host == "" || ip != nil && ip.IsUnspecified():
			return nil, nil, fmt.Errorf("%s %q is not an address others can dial: set it (or %s) to the node's host name or IP address",
				a.setting, a.addr, a.setting[:len(a.setting)-len("advertise")]+"listen")
		case ip != nil:
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			if ip.IsLoopback() && !slices.Contains(dnsNames, "localhost") {
				dnsNames = append(dnsNames, "localhost")
			}
		default:
			if !slices.Contains(dnsNames, host) {
				dnsNames = append(dnsNames, host)
			}
		}
	}
	return dnsNames, ips, nil
}
