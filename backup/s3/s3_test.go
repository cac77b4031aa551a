package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/custos-eu/custos/backup/s3"
	"github.com/custos-eu/custos/backup/s3/s3test"
	"github.com/custos-eu/custos/backup/target"
)

const (
	akEnv  = "CUSTOS_TEST_S3_ACCESS_KEY"
	skEnv  = "CUSTOS_TEST_S3_SECRET_KEY"
	bucket = "custos-archives"
)

// request is what the recording transport saw of one request.
type request struct {
	method string
	path   string
	query  map[string][]string
	header http.Header
	body   []byte // only for UploadPart and PutObject
}

func (r request) isUploadPart() bool {
	return r.method == http.MethodPut && r.query["partNumber"] != nil && r.query["uploadId"] != nil
}

// recorder is an http.RoundTripper that records every request and the
// largest number of UploadPart requests in flight at once.
type recorder struct {
	next http.RoundTripper

	// corruptPart, if set, flips a byte of that part's body after the
	// headers are computed (damage in transit).
	corruptPart string

	mu       sync.Mutex
	reqs     []request
	inFlight int
	maxParts int
}

func (rec *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r := request{method: req.Method, path: req.URL.Path, query: req.URL.Query(), header: req.Header.Clone()}
	isPart := r.isUploadPart()
	if req.Body != nil && req.Method == http.MethodPut {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		r.body = b
		if isPart && rec.corruptPart != "" && r.query["partNumber"][0] == rec.corruptPart {
			bad := bytes.Clone(b)
			bad[len(bad)/2] ^= 0x55
			b = bad
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, r)
	if isPart {
		rec.inFlight++
		rec.maxParts = max(rec.maxParts, rec.inFlight)
	}
	rec.mu.Unlock()
	resp, err := rec.next.RoundTrip(req)
	if isPart {
		rec.mu.Lock()
		rec.inFlight--
		rec.mu.Unlock()
	}
	return resp, err
}

func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.reqs...)
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = nil
	rec.maxParts = 0
}

type env struct {
	srv *s3test.Server
	tg  *s3.Target
	rec *recorder
	cfg s3.Config
}

// setup starts versitygw, creates an Object Lock bucket and a Target on it
// whose requests go through a recorder.
func setup(t *testing.T, mod ...func(*s3.Config)) *env {
	t.Helper()
	srv := s3test.Start(t)
	srv.CreateLockedBucket(t, bucket)
	t.Setenv(akEnv, srv.AccessKey)
	t.Setenv(skEnv, srv.SecretKey)
	rec := &recorder{next: http.DefaultTransport.(*http.Transport).Clone()}
	cfg := s3.Config{
		Endpoint:     srv.Endpoint,
		Region:       srv.Region,
		Bucket:       bucket,
		AccessKeyEnv: akEnv,
		SecretKeyEnv: skEnv,
		HTTPClient:   &http.Client{Transport: rec},
	}
	for _, m := range mod {
		m(&cfg)
	}
	tg, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Check(ctx(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}
	return &env{srv: srv, tg: tg, rec: rec, cfg: cfg}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

// onlyReader hides every interface but io.Reader (no size, no seeking).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func sha256B64(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

func readAll(t *testing.T, tg *s3.Target, name string) ([]byte, target.ObjectInfo) {
	t.Helper()
	rc, info, err := tg.Get(ctx(t), name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return b, info
}

func TestMultipartRoundTripWithPartChecksums(t *testing.T) {
	e := setup(t)
	data := randomBytes(20<<20, 1)
	const name = "dataset/archive-1.age"
	info, err := e.tg.Put(ctx(t), name, onlyReader{bytes.NewReader(data)}, target.PutOptions{ChecksumSHA256: true, Size: -1})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Size != int64(len(data)) || info.SHA256 != sha256Hex(data) || info.Name != name {
		t.Fatalf("Put info = %+v, want size %d sha256 %s", info, len(data), sha256Hex(data))
	}

	// The parts: 8 + 8 + 4 MiB, each with its SHA-256 in the headers.
	var parts []request
	var create []request
	for _, r := range e.rec.requests() {
		if r.isUploadPart() {
			parts = append(parts, r)
		}
		if r.method == http.MethodPost && r.query["uploads"] != nil {
			create = append(create, r)
		}
	}
	if len(create) != 1 {
		t.Fatalf("%d CreateMultipartUpload requests, want 1", len(create))
	}
	if got := create[0].header.Get("X-Amz-Checksum-Algorithm"); got != "SHA256" {
		t.Errorf("CreateMultipartUpload x-amz-checksum-algorithm = %q, want SHA256", got)
	}
	if len(parts) != 3 {
		t.Fatalf("%d UploadPart requests, want 3 (8+8+4 MiB)", len(parts))
	}
	seen := map[string]bool{}
	for _, p := range parts {
		num := p.query["partNumber"][0]
		if seen[num] {
			t.Errorf("part %s uploaded twice", num)
		}
		seen[num] = true
		if got := p.header.Get("X-Amz-Sdk-Checksum-Algorithm"); got != "SHA256" {
			t.Errorf("part %s: x-amz-sdk-checksum-algorithm = %q, want SHA256", num, got)
		}
		got := p.header.Get("X-Amz-Checksum-Sha256")
		if got == "" {
			t.Errorf("part %s: no x-amz-checksum-sha256 header", num)
		} else if got != sha256B64(p.body) {
			t.Errorf("part %s: x-amz-checksum-sha256 = %s, body's is %s", num, got, sha256B64(p.body))
		}
		// The signed payload hash is the same digest, in hex.
		if got, want := p.header.Get("X-Amz-Content-Sha256"), sha256Hex(p.body); got != want {
			t.Errorf("part %s: x-amz-content-sha256 = %s, want %s", num, got, want)
		}
		if len(p.body) != 8<<20 && len(p.body) != 4<<20 {
			t.Errorf("part %s: %d bytes", num, len(p.body))
		}
	}
	if e.rec.maxParts > 3 {
		t.Errorf("%d parts in flight at once, want at most Concurrency=3", e.rec.maxParts)
	}

	got, ginfo := readAll(t, e.tg, name)
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, not byte-identical to the %d uploaded", len(got), len(data))
	}
	if ginfo.Size != int64(len(data)) {
		t.Errorf("Get size %d", ginfo.Size)
	}

	// The store's composite checksum is the one computed from the parts.
	head, err := e.srv.Client().HeadObject(ctx(t), &s3api.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(name), ChecksumMode: "ENABLED",
	})
	if err != nil {
		t.Fatal(err)
	}
	var sums [][32]byte
	for off := 0; off < len(data); off += 8 << 20 {
		sums = append(sums, sha256.Sum256(data[off:min(off+8<<20, len(data))]))
	}
	if got, want := aws.ToString(head.ChecksumSHA256), s3.CompositeSHA256(sums); got != "" {
		if base, _, _ := strings.Cut(got, "-"); base != strings.Split(want, "-")[0] {
			t.Errorf("store's checksum %s, want %s", got, want)
		}
	} else {
		t.Logf("store reports no SHA-256 on HEAD")
	}
}

func TestSmallObjectChecksumAndMetadata(t *testing.T) {
	e := setup(t)
	data := []byte("manifest: clear part only")
	const name = "dataset/archive-1.manifest"
	info, err := e.tg.Put(ctx(t), name, bytes.NewReader(data), target.PutOptions{
		Size: int64(len(data)), Metadata: map[string]string{"dataset": "db1", "kek-id": "k-7"},
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.SHA256 != sha256Hex(data) {
		t.Errorf("Put SHA256 %s, want %s", info.SHA256, sha256Hex(data))
	}
	var puts int
	for _, r := range e.rec.requests() {
		if r.method == http.MethodPut && strings.HasSuffix(r.path, "/"+name) && r.query["x-id"] != nil && r.query["x-id"][0] == "PutObject" {
			puts++
			if got := r.header.Get("X-Amz-Checksum-Sha256"); got != sha256B64(data) {
				t.Errorf("PutObject x-amz-checksum-sha256 = %q, want %s", got, sha256B64(data))
			}
			if got := r.header.Get("X-Amz-Sdk-Checksum-Algorithm"); got != "SHA256" {
				t.Errorf("PutObject x-amz-sdk-checksum-algorithm = %q", got)
			}
		}
	}
	if puts != 1 {
		t.Errorf("%d PutObject requests, want 1", puts)
	}
	got, ginfo := readAll(t, e.tg, name)
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %q", got)
	}
	if ginfo.SHA256 != sha256Hex(data) {
		t.Errorf("Get SHA256 %q, want %s", ginfo.SHA256, sha256Hex(data))
	}
	if ginfo.Metadata["dataset"] != "db1" || ginfo.Metadata["kek-id"] != "k-7" {
		t.Errorf("Get metadata %v", ginfo.Metadata)
	}

	// Empty object.
	if _, err := e.tg.Put(ctx(t), "dataset/empty", strings.NewReader(""), target.PutOptions{Size: -1}); err != nil {
		t.Fatalf("Put empty: %v", err)
	}
	if b, _ := readAll(t, e.tg, "dataset/empty"); len(b) != 0 {
		t.Errorf("empty object read back %d bytes", len(b))
	}
}

func TestRetentionGovernanceAndCompliance(t *testing.T) {
	e := setup(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	cases := []struct {
		name string
		mode target.RetentionMode
		size int
	}{
		{"locked/governance-small", target.Governance, 1000},
		{"locked/compliance-small", target.Compliance, 1000},
		{"locked/governance-multipart", target.Governance, 11 << 20},
		{"locked/compliance-multipart", target.Compliance, 11 << 20},
	}
	for i, c := range cases {
		data := randomBytes(c.size, uint64(10+i))
		info, err := e.tg.Put(ctx(t), c.name, onlyReader{bytes.NewReader(data)}, target.PutOptions{
			Retention: &target.Retention{Mode: c.mode, Until: until}, ChecksumSHA256: true, Size: -1,
		})
		if err != nil {
			t.Fatalf("Put %s: %v", c.name, err)
		}
		if info.Retention == nil || info.Retention.Mode != c.mode {
			t.Errorf("Put %s info retention %+v", c.name, info.Retention)
		}
		r, err := e.tg.Retention(ctx(t), c.name)
		if err != nil {
			t.Fatalf("Retention %s: %v", c.name, err)
		}
		if r == nil || r.Mode != c.mode || !r.Until.Equal(until) {
			t.Fatalf("Retention %s = %+v, want %s until %s", c.name, r, c.mode, until)
		}
		st, err := e.tg.Stat(ctx(t), c.name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Retention == nil || st.Retention.Mode != c.mode || st.LegalHold {
			t.Errorf("Stat %s = %+v", c.name, st)
		}

		err = e.tg.Delete(ctx(t), c.name)
		if !errors.Is(err, target.ErrLocked) {
			t.Fatalf("Delete locked %s: %v, want ErrLocked", c.name, err)
		}
		if !strings.Contains(err.Error(), string(c.mode)) || !strings.Contains(err.Error(), "retention") {
			t.Errorf("Delete error does not say why: %v", err)
		}
		// The store itself refuses, not only our pre-check.
		_, derr := e.srv.Client().DeleteObject(ctx(t), &s3api.DeleteObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(c.name), VersionId: aws.String(st.VersionID),
		})
		if derr == nil || !strings.Contains(derr.Error(), "AccessDenied") {
			t.Errorf("raw versioned delete of locked %s: %v, want AccessDenied", c.name, derr)
		}
		got, _ := readAll(t, e.tg, c.name)
		if !bytes.Equal(got, data) {
			t.Errorf("%s changed after refused delete", c.name)
		}
	}

	// Retention can be extended, and the new date is read back.
	later := until.Add(time.Hour)
	if err := e.tg.SetRetention(ctx(t), "locked/compliance-small", target.Retention{Mode: target.Compliance, Until: later}); err != nil {
		t.Fatalf("extend retention: %v", err)
	}
	if r, err := e.tg.Retention(ctx(t), "locked/compliance-small"); err != nil || r == nil || !r.Until.Equal(later) {
		t.Errorf("after extension: %+v, %v", r, err)
	}

	// Bad retention requests are refused before any upload.
	if _, err := e.tg.Put(ctx(t), "x", strings.NewReader("x"), target.PutOptions{Retention: &target.Retention{Mode: "FOREVER", Until: until}}); err == nil {
		t.Error("unknown retention mode accepted")
	}
	if _, err := e.tg.Put(ctx(t), "x", strings.NewReader("x"), target.PutOptions{Retention: &target.Retention{Mode: target.Governance, Until: time.Now().Add(-time.Minute)}}); err == nil {
		t.Error("retain-until in the past accepted")
	}
}

func TestLegalHoldBlocksDeletionUntilReleased(t *testing.T) {
	e := setup(t, func(c *s3.Config) { c.PartSize = 5 << 20; c.Concurrency = 2 })
	for _, c := range []struct {
		name string
		size int
	}{{"held/small", 4096}, {"held/multipart", 12 << 20}} {
		data := randomBytes(c.size, 3)
		if _, err := e.tg.Put(ctx(t), c.name, onlyReader{bytes.NewReader(data)}, target.PutOptions{LegalHold: true, Size: -1}); err != nil {
			t.Fatalf("Put %s: %v", c.name, err)
		}
		if e.rec.maxParts > 2 {
			t.Errorf("%d parts in flight, want at most 2", e.rec.maxParts)
		}
		on, err := e.tg.LegalHold(ctx(t), c.name)
		if err != nil || !on {
			t.Fatalf("LegalHold %s = %v, %v; want on", c.name, on, err)
		}
		err = e.tg.Delete(ctx(t), c.name)
		if !errors.Is(err, target.ErrLocked) || !strings.Contains(err.Error(), "legal hold") {
			t.Fatalf("Delete held %s: %v, want ErrLocked naming the legal hold", c.name, err)
		}
		if err := e.tg.SetLegalHold(ctx(t), c.name, false); err != nil {
			t.Fatalf("release hold: %v", err)
		}
		if on, err := e.tg.LegalHold(ctx(t), c.name); err != nil || on {
			t.Fatalf("after release LegalHold = %v, %v", on, err)
		}
		if err := e.tg.Delete(ctx(t), c.name); err != nil {
			t.Fatalf("Delete after release: %v", err)
		}
		if _, _, err := e.tg.Get(ctx(t), c.name); !errors.Is(err, target.ErrNotFound) {
			t.Errorf("Get after delete: %v, want ErrNotFound", err)
		}
		if err := e.tg.Delete(ctx(t), c.name); !errors.Is(err, target.ErrNotFound) {
			t.Errorf("second Delete: %v, want ErrNotFound", err)
		}
	}
	// No version of anything is left behind.
	vs, err := e.srv.Client().ListObjectVersions(ctx(t), &s3api.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions)+len(vs.DeleteMarkers) != 0 {
		t.Errorf("%d versions and %d delete markers left", len(vs.Versions), len(vs.DeleteMarkers))
	}

	// A hold placed after upload also blocks deletion.
	if _, err := e.tg.Put(ctx(t), "held/later", strings.NewReader("x"), target.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.tg.SetLegalHold(ctx(t), "held/later", true); err != nil {
		t.Fatal(err)
	}
	if err := e.tg.Delete(ctx(t), "held/later"); !errors.Is(err, target.ErrLocked) {
		t.Fatalf("Delete after SetLegalHold: %v", err)
	}
	if err := e.tg.SetLegalHold(ctx(t), "held/later", false); err != nil {
		t.Fatal(err)
	}
}

func TestListByPrefixAndDeleteAllVersions(t *testing.T) {
	e := setup(t, func(c *s3.Config) { c.Prefix = "custos"; c.AllowOverwrite = true })
	names := []string{"db/b.age", "db/a.age", "dbx/c.age", "web/a.age"}
	for _, n := range names {
		if _, err := e.tg.Put(ctx(t), n, strings.NewReader(n), target.PutOptions{}); err != nil {
			t.Fatalf("Put %s: %v", n, err)
		}
	}
	list := func(prefix string) []string {
		objs, err := e.tg.List(ctx(t), prefix)
		if err != nil {
			t.Fatalf("List %q: %v", prefix, err)
		}
		var out []string
		for _, o := range objs {
			out = append(out, o.Name)
			if o.Size != int64(len(o.Name)) || o.Modified.IsZero() {
				t.Errorf("List entry %+v", o)
			}
		}
		return out
	}
	if got, want := strings.Join(list("db/"), ","), "db/a.age,db/b.age"; got != want {
		t.Errorf("List db/ = %s, want %s", got, want)
	}
	if got, want := strings.Join(list("db"), ","), "db/a.age,db/b.age,dbx/c.age"; got != want {
		t.Errorf("List db = %s, want %s", got, want)
	}
	if got, want := strings.Join(list(""), ","), "db/a.age,db/b.age,dbx/c.age,web/a.age"; got != want {
		t.Errorf("List all = %s, want %s", got, want)
	}
	if got := list("nothing/"); len(got) != 0 {
		t.Errorf("List nothing/ = %v", got)
	}
	// Keys carry the configured prefix.
	raw, err := e.srv.Client().ListObjectsV2(ctx(t), &s3api.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range raw.Contents {
		if !strings.HasPrefix(aws.ToString(o.Key), "custos/") {
			t.Errorf("key %s lacks the prefix", aws.ToString(o.Key))
		}
	}

	// Overwrite (allowed here) makes two versions; Delete removes both.
	if _, err := e.tg.Put(ctx(t), "db/a.age", strings.NewReader("v2"), target.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := readAll(t, e.tg, "db/a.age"); string(b) != "v2" {
		t.Errorf("after overwrite: %q", b)
	}
	if err := e.tg.Delete(ctx(t), "db/a.age"); err != nil {
		t.Fatal(err)
	}
	vs, err := e.srv.Client().ListObjectVersions(ctx(t), &s3api.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String("custos/db/a.age")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions)+len(vs.DeleteMarkers) != 0 {
		t.Errorf("%d versions, %d markers of a deleted name left", len(vs.Versions), len(vs.DeleteMarkers))
	}
	if got, want := strings.Join(list("db"), ","), "db/b.age,dbx/c.age"; got != want {
		t.Errorf("List after delete = %s, want %s", got, want)
	}
}

func TestPutRefusesExistingName(t *testing.T) {
	e := setup(t)
	if _, err := e.tg.Put(ctx(t), "a/b", strings.NewReader("one"), target.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tg.Put(ctx(t), "a/b", strings.NewReader("two"), target.PutOptions{}); !errors.Is(err, target.ErrExists) {
		t.Fatalf("second Put: %v, want ErrExists", err)
	}
	if b, _ := readAll(t, e.tg, "a/b"); string(b) != "one" {
		t.Errorf("content now %q", b)
	}
}

type failingReader struct {
	r     io.Reader
	after int
	n     int
}

var errSource = errors.New("source broke")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		return 0, errSource
	}
	p = p[:min(len(p), f.after-f.n)]
	n, err := f.r.Read(p)
	f.n += n
	return n, err
}

func TestFailedSourceAbortsUpload(t *testing.T) {
	e := setup(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
	data := randomBytes(30<<20, 4)
	_, err := e.tg.Put(ctx(t), "broken/x", &failingReader{r: bytes.NewReader(data), after: 17 << 20}, target.PutOptions{Size: -1})
	if !errors.Is(err, errSource) {
		t.Fatalf("Put with a failing source: %v, want the source's error", err)
	}
	if _, _, err := e.tg.Get(ctx(t), "broken/x"); !errors.Is(err, target.ErrNotFound) {
		t.Errorf("Get after failed Put: %v, want ErrNotFound", err)
	}
	ups, err := e.srv.Client().ListMultipartUploads(ctx(t), &s3api.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(ups.Uploads))
	}
	// Cancellation aborts too.
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.tg.Put(c, "broken/y", bytes.NewReader(data), target.PutOptions{Size: -1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled context: %v", err)
	}
}

func TestBadCredentialsGiveClearError(t *testing.T) {
	e := setup(t)
	const wrongSecret = "definitely-not-the-secret-0000"
	for _, c := range []struct {
		what   string
		ak, sk string
	}{
		{"wrong secret", e.srv.AccessKey, wrongSecret},
		{"unknown access key", "nobody-access", wrongSecret},
	} {
		t.Setenv(akEnv, c.ak)
		t.Setenv(skEnv, c.sk)
		tg, err := s3.New(e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		errs := map[string]error{"Check": tg.Check(ctx(t))}
		_, errs["Put"] = tg.Put(ctx(t), "x/y", strings.NewReader("data"), target.PutOptions{})
		_, errs["List"] = tg.List(ctx(t), "")
		errs["Delete"] = tg.Delete(ctx(t), "x/y")
		for op, err := range errs {
			if !errors.Is(err, s3.ErrCredentials) {
				t.Errorf("%s, %s: %v, want ErrCredentials", c.what, op, err)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, akEnv) || !strings.Contains(msg, skEnv) {
				t.Errorf("%s, %s: error does not name the variables: %v", c.what, op, err)
			}
			if strings.Contains(msg, wrongSecret) || strings.Contains(msg, e.srv.SecretKey) {
				t.Errorf("%s, %s: error leaks a secret: %v", c.what, op, err)
			}
		}
		t.Logf("%s: %v", c.what, errs["Put"])
	}
}

func TestBucketWithoutObjectLock(t *testing.T) {
	e := setup(t)
	e.srv.CreateBucket(t, "plain")
	cfg := e.cfg
	cfg.Bucket = "plain"
	tg, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Check(ctx(t)); !errors.Is(err, target.ErrUnsupported) {
		t.Errorf("Check on a bucket without Object Lock: %v, want ErrUnsupported", err)
	}
	_, err = tg.Put(ctx(t), "x", strings.NewReader("x"), target.PutOptions{
		Retention: &target.Retention{Mode: target.Governance, Until: time.Now().Add(time.Hour)},
	})
	if !errors.Is(err, target.ErrUnsupported) {
		t.Errorf("retention on a bucket without Object Lock: %v, want ErrUnsupported", err)
	}
	cfg.Bucket = "missing"
	tg, _ = s3.New(cfg)
	if err := tg.Check(ctx(t)); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Check on a missing bucket: %v", err)
	}
}

func TestConfigAndNames(t *testing.T) {
	t.Setenv(akEnv, "a")
	t.Setenv(skEnv, "")
	_, err := s3.New(s3.Config{Region: "eu-central-1", Bucket: "b", AccessKeyEnv: akEnv, SecretKeyEnv: skEnv})
	if err == nil || !strings.Contains(err.Error(), skEnv) {
		t.Errorf("empty secret variable: %v", err)
	}
	t.Setenv(skEnv, "s")
	for _, bad := range []s3.Config{
		{Bucket: "b", AccessKeyEnv: akEnv, SecretKeyEnv: skEnv},
		{Region: "r", AccessKeyEnv: akEnv, SecretKeyEnv: skEnv},
		{Region: "r", Bucket: "b"},
		{Region: "r", Bucket: "b", AccessKeyEnv: akEnv, SecretKeyEnv: skEnv, PartSize: 1 << 20},
		{Region: "r", Bucket: "b", AccessKeyEnv: akEnv, SecretKeyEnv: skEnv, Concurrency: 9},
		{Region: "r", Bucket: "b", AccessKeyEnv: akEnv, SecretKeyEnv: skEnv, Prefix: "a/../b"},
	} {
		if _, err := s3.New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
	tg, err := s3.New(s3.Config{Region: "r", Bucket: "b", AccessKeyEnv: akEnv, SecretKeyEnv: skEnv, Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "/abs", "a//b", "a/./b", "../x", "a/..", "a/", "a\x00b", "a\\b"} {
		if _, err := tg.Put(context.Background(), name, strings.NewReader("x"), target.PutOptions{}); err == nil {
			t.Errorf("Put(%q) accepted", name)
		}
		if err := tg.Delete(context.Background(), name); err == nil {
			t.Errorf("Delete(%q) accepted", name)
		}
	}
	if c := tg.Capabilities(); !c.Retention || !c.LegalHold {
		t.Errorf("Capabilities = %+v", c)
	}
}

func TestPartCorruptedInTransitIsRefused(t *testing.T) {
	e := setup(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
	e.rec.corruptPart = "2"
	data := randomBytes(12<<20, 5)
	_, err := e.tg.Put(ctx(t), "damaged/x", bytes.NewReader(data), target.PutOptions{Size: -1})
	if !errors.Is(err, target.ErrChecksum) {
		t.Fatalf("Put with part 2 damaged in transit: %v, want ErrChecksum", err)
	}
	t.Logf("damaged part: %v", err)
	if _, _, err := e.tg.Get(ctx(t), "damaged/x"); !errors.Is(err, target.ErrNotFound) {
		t.Errorf("Get after refused Put: %v, want ErrNotFound", err)
	}
	ups, err := e.srv.Client().ListMultipartUploads(ctx(t), &s3api.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(ups.Uploads))
	}
}

// The store checks x-amz-checksum-sha256 itself, not only the signed payload hash.
func TestStoreVerifiesChecksumHeader(t *testing.T) {
	e := setup(t)
	wrong := sha256B64([]byte("something else"))
	_, err := e.srv.Client().PutObject(ctx(t), &s3api.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("x"), Body: strings.NewReader("content"),
		ChecksumAlgorithm: "SHA256", ChecksumSHA256: aws.String(wrong),
	})
	if err == nil {
		t.Fatal("PutObject with a wrong x-amz-checksum-sha256 accepted")
	}
	t.Logf("wrong checksum: %v", err)
}

func TestDeclaredSize(t *testing.T) {
	e := setup(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
	for _, c := range []struct {
		name     string
		size     int
		declared int64
		ok       bool
	}{
		{"sz/small-exact", 1000, 1000, true},
		{"sz/small-unset", 1000, 0, true},
		{"sz/multi-exact", 11 << 20, 11 << 20, true},
		{"sz/small-short", 1000, 2000, false},
		{"sz/multi-long", 11 << 20, 6 << 20, false},
		{"sz/multi-short", 11 << 20, 12 << 20, false},
	} {
		data := randomBytes(c.size, 6)
		info, err := e.tg.Put(ctx(t), c.name, bytes.NewReader(data), target.PutOptions{Size: c.declared})
		if c.ok {
			if err != nil || info.Size != int64(c.size) || info.SHA256 != sha256Hex(data) {
				t.Errorf("%s: %+v, %v", c.name, info, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "declared size") {
			t.Errorf("%s: %v, want a declared-size error", c.name, err)
		}
		if _, _, err := e.tg.Get(ctx(t), c.name); !errors.Is(err, target.ErrNotFound) {
			t.Errorf("%s stored despite the size mismatch: %v", c.name, err)
		}
	}
	ups, err := e.srv.Client().ListMultipartUploads(ctx(t), &s3api.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(ups.Uploads))
	}
}
