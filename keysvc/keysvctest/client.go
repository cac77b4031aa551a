package keysvctest

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/custos-eu/custos/keysvc"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// Client is a client of the cluster with a certificate from the cluster's
// test CA; it signs its key-op requests as the SDK does.
type Client struct {
	ID   identity.Identity
	Cert *x509.Certificate
	Key  crypto.Signer
	// Now is the client's clock; nil means time.Now.
	Now func() time.Time
}

// cas holds one test CA per cluster name, shared by every test cluster of
// that name in the process, so clients can be made before a cluster is.
var cas sync.Map // cluster name -> *identity.CA

// CA returns the test CA of the cluster name.
func CA(cluster string) *identity.CA {
	if ca, ok := cas.Load(cluster); ok {
		return ca.(*identity.CA)
	}
	ca, err := identity.NewCA(cluster, 7*24*time.Hour)
	if err != nil {
		panic(fmt.Sprintf("keysvctest: test CA: %v", err))
	}
	got, _ := cas.LoadOrStore(cluster, ca)
	return got.(*identity.CA)
}

// NewClient issues a certificate for role/name/region from the test CA of
// cluster. It panics on error (it is meant for test variables).
func NewClient(cluster string, role identity.Role, name, region string) *Client {
	id := identity.Identity{Cluster: cluster, Name: name, Role: role, Region: region}
	certPEM, keyPEM, err := CA(cluster).Issue(id, identity.IssueOptions{})
	if err != nil {
		panic(fmt.Sprintf("keysvctest: issue %s: %v", id, err))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		panic(err)
	}
	return &Client{ID: id, Cert: pair.Leaf, Key: pair.PrivateKey.(crypto.Signer)}
}

// Client issues a certificate for role/name/region from the cluster's CA.
func (c *Cluster) Client(role identity.Role, name, region string) *Client {
	return NewClient(c.Name, role, name, region)
}

// Caller is the client as a node sees it, without a signed request.
func (a *Client) Caller() keysvc.Caller {
	return keysvc.Caller{ID: a.ID, Actor: keysvc.Actor(a.ID, a.Cert)}
}

// Sign returns the caller with r signed (RequestID and Time filled in when empty).
func (a *Client) Sign(r reqsig.Request) keysvc.Caller {
	r.Cluster = a.ID.Cluster
	if r.RequestID == "" {
		r.RequestID = reqsig.NewRequestID()
	}
	if r.Time == 0 {
		now := time.Now
		if a.Now != nil {
			now = a.Now
		}
		r.Time = now().Unix()
	}
	msg, err := r.Marshal()
	if err != nil {
		panic(err)
	}
	sig, err := reqsig.Sign(a.Key, msg)
	if err != nil {
		panic(err)
	}
	c := a.Caller()
	c.Signed = &reqsig.Signed{Message: msg, Signature: sig, Cert: a.Cert.Raw}
	return c
}

// Unwrap returns the caller signed for an unwrap (or, with op, a rewrap) of blob.
func (a *Client) Unwrap(kekID string, blob []byte, ctx wrapkey.Context) keysvc.Caller {
	return a.sign1(reqsig.OpUnwrap, kekID, blob, ctx)
}

// Rewrap returns the caller signed for a rewrap of blob.
func (a *Client) Rewrap(kekID string, blob []byte, ctx wrapkey.Context) keysvc.Caller {
	return a.sign1(reqsig.OpRewrap, kekID, blob, ctx)
}

func (a *Client) sign1(op, kekID string, blob []byte, ctx wrapkey.Context) keysvc.Caller {
	var ver uint32
	if b, err := wrapkey.Parse(blob); err == nil {
		ver = b.KEKVersion
	}
	ch, _ := reqsig.ContextHash(ctx)
	return a.Sign(reqsig.Request{Op: op, KEKID: kekID, Version: ver, Body: reqsig.BodyHash(blob), Context: ch})
}

// UnwrapBatch returns the caller signed for an unwrap batch of items.
func (a *Client) UnwrapBatch(kekID string, items []keysvc.UnwrapItem) keysvc.Caller {
	its := make([]reqsig.Item, len(items))
	for i, it := range items {
		its[i].Body = reqsig.BodyHash(it.Blob)
		its[i].Context, _ = reqsig.ContextHash(it.Context)
	}
	empty, _ := reqsig.ContextHash(nil)
	return a.Sign(reqsig.Request{Op: reqsig.OpUnwrapBatch, KEKID: kekID, Body: reqsig.BatchHash(its), Context: empty})
}
