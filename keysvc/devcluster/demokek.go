package devcluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/officer"
)

// DemoKEK is the KEK CreateDemoKEK creates: agents may wrap and unwrap with
// it from the cluster's regions; activated keys stay cached 5 minutes.
const DemoKEK = "demo"

// DemoKEKPolicy is the demo KEK's policy.
func DemoKEKPolicy() ceremony.Policy {
	regions := slices.Sorted(slices.Values(Regions))
	return ceremony.Policy{Threshold: DemoThreshold, ActivationTTL: 5 * time.Minute,
		Wrap:   ceremony.Access{Roles: []string{"agent"}, Regions: regions},
		Unwrap: ceremony.Access{Roles: []string{"agent"}, Regions: regions}}
}

// CreateDemoKEK creates KEK "demo" by a kek.create ceremony of the demo
// officers (alice proposes, bob approves), unless it exists. The cluster
// must be up and initialized (InitOfficers).
func (c *Cluster) CreateDemoKEK(ctx context.Context) (client.Ceremony, error) {
	pass, err := os.ReadFile(c.PassphraseFile())
	if err != nil {
		return client.Ceremony{}, err
	}
	signer := func(name string) (*officer.Signer, *client.Client, error) {
		s, err := officer.Load(c.OfficerKey(name), []byte(strings.TrimSpace(string(pass))))
		if err != nil {
			return nil, nil, err
		}
		cl, err := c.OfficerClient(name)
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		return s, cl, nil
	}
	alice, aliceAPI, err := signer("alice")
	if err != nil {
		return client.Ceremony{}, err
	}
	defer alice.Close()
	defer aliceAPI.Close()
	if _, err := aliceAPI.KEK(ctx, DemoKEK); err == nil {
		return client.Ceremony{}, nil
	}
	bob, bobAPI, err := signer("bob")
	if err != nil {
		return client.Ceremony{}, err
	}
	defer bob.Close()
	defer bobAPI.Close()
	for try := 0; ; try++ {
		st, err := aliceAPI.Cluster(ctx)
		if err != nil {
			return client.Ceremony{}, err
		}
		id, err := ceremony.NewID(rand.Reader)
		if err != nil {
			return client.Ceremony{}, err
		}
		now := time.Now().UTC()
		p := ceremony.Proposal{Cluster: st.Cluster, ID: id, Params: ceremony.KEKCreate{KEKID: DemoKEK, Policy: DemoKEKPolicy()},
			Proposer: "alice", Created: now, Expires: now.Add(time.Hour), StateVersion: st.StateVersion}
		b, err := p.Marshal()
		if err != nil {
			return client.Ceremony{}, err
		}
		sig, err := alice.Sign(p.Digest())
		if err != nil {
			return client.Ceremony{}, err
		}
		_, err = aliceAPI.Propose(ctx, client.ProposeRequest{Proposal: string(b), Signature: string(sig.Marshal())})
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Code == string(ceremony.CodeSuperseded) && try < 20 {
			time.Sleep(100 * time.Millisecond) // the node that answered was behind
			continue
		}
		if err != nil {
			return client.Ceremony{}, fmt.Errorf("devcluster: propose kek.create: %w", err)
		}
		if sig, err = bob.Sign(p.Digest()); err != nil {
			return client.Ceremony{}, err
		}
		cer, err := bobAPI.Approve(ctx, id, client.ApproveRequest{Officer: "bob", Signature: string(sig.Marshal())})
		if err != nil {
			return client.Ceremony{}, fmt.Errorf("devcluster: approve kek.create: %w", err)
		}
		if cer.Status != "executed" {
			return cer, fmt.Errorf("devcluster: kek.create %s: %s (%s: %s)", id, cer.Status, cer.Code, cer.Reason)
		}
		return cer, nil
	}
}
