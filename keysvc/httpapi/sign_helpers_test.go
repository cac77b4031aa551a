package httpapi_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/httpapi"
	"github.com/custos-eu/custos/keysvc/identity"
	"github.com/custos-eu/custos/keysvc/reqsig"
	"github.com/custos-eu/custos/keysvc/wrapkey"
)

// keyOfFiles is the private key of a certificate issued by the test PKI.
func keyOfFiles(t *testing.T, files identity.TLSFiles) crypto.Signer {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pair.PrivateKey.(crypto.Signer)
}

// signHeader signs r (request id and time filled in when empty) with key
// and returns the header value.
func signHeader(t *testing.T, key crypto.Signer, r reqsig.Request) string {
	t.Helper()
	if r.RequestID == "" {
		r.RequestID = reqsig.NewRequestID()
	}
	if r.Time == 0 {
		r.Time = time.Now().Unix()
	}
	msg, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := reqsig.Sign(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	return reqsig.EncodeHeader(msg, sig)
}

// describe is the reqsig.Request that describes a key-op request to KEK
// kek with JSON body, as the SDK builds it, or false when the body is not
// a key-op request (a malformed body: sent unsigned).
func describe(cluster, kek, op string, body []byte) (reqsig.Request, bool) {
	r := reqsig.Request{Cluster: cluster, KEKID: kek}
	ctxHash := func(c map[string]string) ([32]byte, bool) {
		h, err := reqsig.ContextHash(wrapkey.Context(c))
		return h, err == nil
	}
	var ok bool
	switch op {
	case "wrap", "unwrap", "rewrap", "datakey":
		var in struct {
			Plaintext []byte            `json:"plaintext"`
			Wrapped   []byte            `json:"wrapped"`
			Context   map[string]string `json:"context"`
		}
		if json.Unmarshal(body, &in) != nil {
			return r, false
		}
		r.Op = op
		switch op {
		case "wrap":
			r.Body = reqsig.BodyHash(in.Plaintext)
		case "datakey":
			r.Body = reqsig.BodyHash(nil)
		default:
			r.Version, r.Body = reqsig.BlobVersion(in.Wrapped), reqsig.BodyHash(in.Wrapped)
		}
		if r.Context, ok = ctxHash(in.Context); !ok {
			return r, false
		}
	case "wrap/batch", "unwrap/batch":
		var in struct {
			Items []struct {
				Plaintext []byte            `json:"plaintext"`
				Wrapped   []byte            `json:"wrapped"`
				Context   map[string]string `json:"context"`
			} `json:"items"`
		}
		if json.Unmarshal(body, &in) != nil {
			return r, false
		}
		r.Op = reqsig.OpWrapBatch
		if op == "unwrap/batch" {
			r.Op = reqsig.OpUnwrapBatch
		}
		items := make([]reqsig.Item, len(in.Items))
		for i, it := range in.Items {
			if items[i].Context, ok = ctxHash(it.Context); !ok {
				return r, false
			}
			items[i].Body = reqsig.BodyHash(append(it.Plaintext, it.Wrapped...))
		}
		r.Body = reqsig.BatchHash(items)
		r.Context, _ = ctxHash(nil)
	default:
		return r, false
	}
	return r, true
}

// signingTransport signs every key-op POST it sends as the SDK does, with
// the key of the certificate its TLS configuration presents.
type signingTransport struct {
	t       *testing.T
	base    http.RoundTripper
	key     crypto.Signer
	cluster string
}

func (s *signingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/keks/")
	kek, op, _ := strings.Cut(rest, "/")
	// Bodies over their route's limit are refused for their size first: sent unsigned.
	if r.Method != http.MethodPost || !ok || r.Body == nil || r.Header.Get(reqsig.Header) != "" ||
		r.ContentLength > httpapi.BodyLimits["POST /v1/keks/{id}/"+op] {
		return s.base.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if sr, ok := describe(s.cluster, kek, op, body); ok {
		sr.RequestID, sr.Time = reqsig.NewRequestID(), time.Now().Unix()
		if msg, err := sr.Marshal(); err == nil { // else unsigned: a kek id no request can name
			sig, err := reqsig.Sign(s.key, msg)
			if err != nil {
				return nil, err
			}
			r.Header.Set(reqsig.Header, reqsig.EncodeHeader(msg, sig))
		}
	}
	return s.base.RoundTrip(r)
}

// signed returns an HTTP client like as, whose key-op requests carry a
// signature made with its certificate's key.
func (e *env) signed(t *testing.T, role identity.Role, name, region string) *http.Client {
	t.Helper()
	files := e.pki.Issue(t, role, name, region)
	tc := e.pki.ClientTLS(t, files)
	return &http.Client{
		Transport:     &signingTransport{t: t, base: &http.Transport{TLSClientConfig: tc}, key: keyOfFiles(t, files), cluster: e.pki.Cluster},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
