// Package s3 is the S3-compatible archive target: streaming multipart uploads
// with a SHA-256 checksum on every part, Object Lock retention (GOVERNANCE or
// COMPLIANCE) and legal hold, and deletes that never get past a lock.
//
// It talks to any S3-compatible endpoint through aws-sdk-go-v2 with path-style
// addressing (unless VirtualHostStyle is set), a custom endpoint, a region and
// static credentials read from environment variables named in the Config. The
// secret values are never logged or put in errors; only the variable names are.
//
// Memory: an upload holds at most Concurrency+1 part buffers of PartSize bytes
// (default 4 × 8 MiB = 32 MiB), whatever the size of the stream.
//
// Buckets must have Object Lock enabled (which implies versioning); Check
// verifies that. Because the bucket is versioned, Delete removes every version
// of a name, and refuses (ErrLocked) before deleting anything if any version is
// under retention or legal hold.
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/custos-eu/custos/backup/target"
)

// Sizes and limits.
const (
	// DefaultPartSize is the multipart part size when Config.PartSize is 0.
	DefaultPartSize = 8 << 20
	// MinPartSize is S3's minimum size for every part but the last.
	MinPartSize = 5 << 20
	// MaxPartSize is S3's maximum part size.
	MaxPartSize = 5 << 30
	// MaxParts is S3's maximum number of parts in one upload.
	MaxParts = 10000
	// DefaultConcurrency is how many parts are uploaded at a time by default.
	DefaultConcurrency = 3
	// MaxConcurrency bounds Config.Concurrency.
	MaxConcurrency = 4
)

// metaSHA256 is the user-metadata key holding the hex SHA-256 of single-part
// objects (multipart objects carry a composite checksum instead).
const metaSHA256 = "custos-sha256"

// ErrCredentials: the endpoint rejected the credentials (wrapped with the
// names of the environment variables they came from).
var ErrCredentials = errors.New("s3 target: credentials rejected by the endpoint")

// Config describes one S3-compatible target.
type Config struct {
	// Endpoint is the base URL of the S3 API (https://s3.eu-central-1.example.com).
	// Empty means AWS's default endpoint for Region.
	Endpoint string
	// Region is the signing region (required).
	Region string
	// Bucket must exist and have Object Lock enabled.
	Bucket string
	// Prefix is prepended to every object name ("custos/" → "custos/dataset/x.age").
	Prefix string
	// VirtualHostStyle selects bucket.host addressing; the default is path style.
	VirtualHostStyle bool

	// AccessKeyEnv and SecretKeyEnv name the environment variables holding the
	// static credentials (required); SessionTokenEnv optionally names one
	// holding a session token. Only the names are ever reported.
	AccessKeyEnv, SecretKeyEnv, SessionTokenEnv string

	// PartSize is the multipart part size (default 8 MiB, at least 5 MiB).
	// When the stream size is known and would need more than 10,000 parts,
	// the part size is raised for that upload.
	PartSize int64
	// Concurrency is how many parts are uploaded at a time (default 3, 1–4).
	Concurrency int
	// AllowOverwrite lets Put store a new version under an existing name;
	// by default Put refuses with target.ErrExists.
	AllowOverwrite bool

	// HTTPClient, if set, carries every request (proxies, custom TLS, tests).
	HTTPClient *http.Client
}

// Target is an S3-compatible archive store. It implements target.Target.
type Target struct {
	cfg    Config
	client *s3api.Client
	prefix string
}

var _ target.Target = (*Target)(nil)

// New checks cfg, reads the credentials from the environment variables it
// names and returns a Target. It makes no request; call Check for that.
func New(cfg Config) (*Target, error) {
	if cfg.Region == "" {
		return nil, errors.New("s3 target: region is required")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3 target: bucket is required")
	}
	if cfg.AccessKeyEnv == "" || cfg.SecretKeyEnv == "" {
		return nil, errors.New("s3 target: the names of the access key and secret key environment variables are required")
	}
	ak := os.Getenv(cfg.AccessKeyEnv)
	if ak == "" {
		return nil, fmt.Errorf("s3 target: environment variable %s (access key id) is unset or empty", cfg.AccessKeyEnv)
	}
	sk := os.Getenv(cfg.SecretKeyEnv)
	if sk == "" {
		return nil, fmt.Errorf("s3 target: environment variable %s (secret access key) is unset or empty", cfg.SecretKeyEnv)
	}
	var tok string
	if cfg.SessionTokenEnv != "" {
		tok = os.Getenv(cfg.SessionTokenEnv)
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize {
		return nil, fmt.Errorf("s3 target: part size %d outside [%d, %d]", cfg.PartSize, MinPartSize, int64(MaxPartSize))
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency {
		return nil, fmt.Errorf("s3 target: concurrency %d outside [1, %d]", cfg.Concurrency, MaxConcurrency)
	}
	prefix := strings.TrimPrefix(cfg.Prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if prefix != "" {
		if err := checkName(strings.TrimSuffix(prefix, "/")); err != nil {
			return nil, fmt.Errorf("s3 target: prefix: %w", err)
		}
	}
	opts := s3api.Options{
		Region:       cfg.Region,
		UsePathStyle: !cfg.VirtualHostStyle,
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, tok),
		// Checksums are sent explicitly on every upload request; responses
		// are validated when the store returns a full-object checksum.
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenSupported,
		RetryMaxAttempts:                          3,
		DisableLogOutputChecksumValidationSkipped: true,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(strings.TrimSuffix(cfg.Endpoint, "/"))
	}
	if cfg.HTTPClient != nil {
		opts.HTTPClient = cfg.HTTPClient
	}
	return &Target{cfg: cfg, client: s3api.New(opts), prefix: prefix}, nil
}

// Client is the underlying SDK client (for tests and administration).
func (t *Target) Client() *s3api.Client { return t.client }

// Bucket is the configured bucket.
func (t *Target) Bucket() string { return t.cfg.Bucket }

// Capabilities: an S3 bucket with Object Lock enforces both retention and
// legal hold (Check verifies that the bucket has Object Lock enabled).
func (t *Target) Capabilities() target.Capabilities {
	return target.Capabilities{Retention: true, LegalHold: true}
}

// Check verifies the credentials, that the bucket exists and that it has
// Object Lock enabled.
func (t *Target) Check(ctx context.Context) error {
	out, err := t.client.GetObjectLockConfiguration(ctx, &s3api.GetObjectLockConfigurationInput{Bucket: &t.cfg.Bucket})
	if err != nil {
		if code := apiCode(err); code == "ObjectLockConfigurationNotFoundError" || code == "ObjectLockConfigurationNotFound" {
			return fmt.Errorf("s3 target: bucket %q has no Object Lock configuration (create it with Object Lock enabled): %w", t.cfg.Bucket, target.ErrUnsupported)
		}
		return t.wrap("check bucket", "", err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return fmt.Errorf("s3 target: bucket %q does not have Object Lock enabled: %w", t.cfg.Bucket, target.ErrUnsupported)
	}
	return nil
}

// key maps an object name to its S3 key.
func (t *Target) key(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return t.prefix + name, nil
}

// checkName refuses names that are empty, absolute, have empty, "." or ".."
// elements, or hold control characters or invalid UTF-8.
func checkName(name string) error {
	if name == "" {
		return errors.New("s3 target: empty object name")
	}
	if !utf8.ValidString(name) || len(name) > 900 {
		return fmt.Errorf("s3 target: invalid object name %q", name)
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("s3 target: object name %q is absolute", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == '\\' {
			return fmt.Errorf("s3 target: object name %q holds a control character or backslash", name)
		}
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("s3 target: object name %q has an empty, \".\" or \"..\" element", name)
		}
	}
	return nil
}

func checkRetention(r *target.Retention) error {
	if r == nil {
		return nil
	}
	switch r.Mode {
	case target.Governance, target.Compliance:
	default:
		return fmt.Errorf("s3 target: unknown retention mode %q (want GOVERNANCE or COMPLIANCE)", r.Mode)
	}
	if !r.Until.After(time.Now()) {
		return fmt.Errorf("s3 target: retain-until %s is not in the future", r.Until.UTC().Format(time.RFC3339))
	}
	return nil
}

// lockFields are the Object Lock request fields for opts.
func lockFields(opts target.PutOptions) (types.ObjectLockMode, *time.Time, types.ObjectLockLegalHoldStatus) {
	var mode types.ObjectLockMode
	var until *time.Time
	if opts.Retention != nil {
		mode = types.ObjectLockMode(opts.Retention.Mode)
		u := opts.Retention.Until.UTC()
		until = &u
	}
	var hold types.ObjectLockLegalHoldStatus
	if opts.LegalHold {
		hold = types.ObjectLockLegalHoldStatusOn
	}
	return mode, until, hold
}

// withPayloadHash tells the SigV4 signer the payload's SHA-256 (already
// computed for the checksum), so the body is not hashed a second time.
func withPayloadHash(sum []byte) func(*s3api.Options) {
	h := hex.EncodeToString(sum)
	return func(o *s3api.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("custosPayloadHash",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					return next.HandleInitialize(v4.SetPayloadHash(ctx, h), in)
				}), middleware.After)
		})
	}
}

func b64(sum []byte) string { return base64.StdEncoding.EncodeToString(sum) }

// Put streams r to name: a single PutObject when the content fits in one part,
// otherwise a multipart upload with up to Concurrency parts in flight. Every
// request carries the SHA-256 of its body (x-amz-checksum-sha256), whatever
// opts.ChecksumSHA256 says; the store verifies it, and the checksum the store
// reports back is compared with the local one. The returned ObjectInfo.SHA256
// is the hex SHA-256 of the whole content. Retention and legal hold are set
// atomically with the object's creation.
func (t *Target) Put(ctx context.Context, name string, r io.Reader, opts target.PutOptions) (target.ObjectInfo, error) {
	key, err := t.key(name)
	if err != nil {
		return target.ObjectInfo{}, err
	}
	if err := checkRetention(opts.Retention); err != nil {
		return target.ObjectInfo{}, err
	}
	for k, v := range opts.Metadata {
		if k == "" || strings.EqualFold(k, metaSHA256) || !isASCII(k) || !isASCII(v) {
			return target.ObjectInfo{}, fmt.Errorf("s3 target: metadata %q: keys and values must be ASCII, non-empty keys, and %q is reserved", k, metaSHA256)
		}
	}
	if !t.cfg.AllowOverwrite {
		// Fail fast; the final request also carries If-None-Match: *.
		exists, err := t.exists(ctx, name, key)
		if err != nil {
			return target.ObjectInfo{}, err
		}
		if exists {
			return target.ObjectInfo{}, fmt.Errorf("s3 target: put %s: %w", name, target.ErrExists)
		}
	}

	partSize := t.cfg.PartSize
	if opts.Size > 0 {
		if need := (opts.Size + MaxParts - 1) / MaxParts; need > partSize {
			partSize = (need + 1<<20 - 1) &^ (1<<20 - 1) // round up to MiB
		}
		if partSize > MaxPartSize {
			return target.ObjectInfo{}, fmt.Errorf("s3 target: %s: %d bytes exceed the largest multipart upload", name, opts.Size)
		}
	}
	// Read up to one part; a growing buffer keeps small objects small.
	var buf bytes.Buffer
	if opts.Size > 0 && opts.Size < partSize {
		buf.Grow(int(opts.Size) + bytes.MinRead)
	}
	_, err = io.CopyN(&buf, r, partSize)
	switch {
	case err == io.EOF:
		return t.putSingle(ctx, name, key, buf.Bytes(), opts)
	case err != nil:
		return target.ObjectInfo{}, fmt.Errorf("s3 target: reading %s: %w", name, err)
	}
	first := buf.Bytes()
	if int64(cap(first)) > partSize {
		first = bytes.Clone(first) // keep every part buffer at partSize
	}
	return t.putMultipart(ctx, name, key, first, partSize, r, opts)
}

// checkSize refuses content whose length differs from a declared Size.
func checkSize(name string, got int64, opts target.PutOptions) error {
	if opts.Size > 0 && got != opts.Size {
		return fmt.Errorf("s3 target: %s: read %d bytes but the declared size is %d", name, got, opts.Size)
	}
	return nil
}

// exists reports whether key has a current version. It lists rather than
// HEADs so that a refusal comes with an error code (HEAD answers have no body).
func (t *Target) exists(ctx context.Context, name, key string) (bool, error) {
	out, err := t.client.ListObjectsV2(ctx, &s3api.ListObjectsV2Input{
		Bucket: &t.cfg.Bucket, Prefix: &key, MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return false, t.wrap("look up", name, err)
	}
	// Keys are listed in byte order, so key itself comes first if present.
	return len(out.Contents) > 0 && aws.ToString(out.Contents[0].Key) == key, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (t *Target) metadata(opts target.PutOptions, sum string) map[string]string {
	m := make(map[string]string, len(opts.Metadata)+1)
	for k, v := range opts.Metadata {
		m[strings.ToLower(k)] = v
	}
	if sum != "" {
		m[metaSHA256] = sum
	}
	return m
}

func (t *Target) putSingle(ctx context.Context, name, key string, body []byte, opts target.PutOptions) (target.ObjectInfo, error) {
	if err := checkSize(name, int64(len(body)), opts); err != nil {
		return target.ObjectInfo{}, err
	}
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	mode, until, hold := lockFields(opts)
	in := &s3api.PutObjectInput{
		Bucket:                    &t.cfg.Bucket,
		Key:                       &key,
		Body:                      bytes.NewReader(body),
		ContentLength:             aws.Int64(int64(len(body))),
		ContentType:               aws.String("application/octet-stream"),
		ChecksumAlgorithm:         types.ChecksumAlgorithmSha256,
		ChecksumSHA256:            aws.String(b64(sum[:])),
		Metadata:                  t.metadata(opts, hexSum),
		ObjectLockMode:            mode,
		ObjectLockRetainUntilDate: until,
		ObjectLockLegalHoldStatus: hold,
	}
	if !t.cfg.AllowOverwrite {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := t.client.PutObject(ctx, in, withPayloadHash(sum[:]))
	if err != nil {
		return target.ObjectInfo{}, t.wrap("put", name, err)
	}
	if got := aws.ToString(out.ChecksumSHA256); got != "" && got != b64(sum[:]) {
		return target.ObjectInfo{}, fmt.Errorf("s3 target: put %s: store reports SHA-256 %s, sent %s: %w", name, got, b64(sum[:]), target.ErrChecksum)
	}
	return t.finish(ctx, name, key, int64(len(body)), hexSum, aws.ToString(out.VersionId), opts)
}

// finish reads the stored object back (HEAD) and checks its size, then builds
// the ObjectInfo.
func (t *Target) finish(ctx context.Context, name, key string, size int64, hexSum, version string, opts target.PutOptions) (target.ObjectInfo, error) {
	in := &s3api.HeadObjectInput{Bucket: &t.cfg.Bucket, Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	head, err := t.client.HeadObject(ctx, in)
	if err != nil {
		return target.ObjectInfo{}, t.wrap("head after put", name, err)
	}
	if got := aws.ToInt64(head.ContentLength); got != size {
		return target.ObjectInfo{}, fmt.Errorf("s3 target: %s: stored, but the store holds %d bytes, sent %d: %w", name, got, size, target.ErrChecksum)
	}
	info := t.infoFromHead(name, head)
	info.Size = size
	info.SHA256 = hexSum
	if info.VersionID == "" {
		info.VersionID = version
	}
	if opts.Retention != nil && info.Retention == nil {
		r := *opts.Retention
		info.Retention = &r
	}
	if opts.LegalHold {
		info.LegalHold = true
	}
	return info, nil
}

type uploadedPart struct {
	num  int32
	etag string
	sum  [32]byte
}

// putMultipart uploads first and the rest of r as parts of partSize bytes,
// Concurrency at a time, with Concurrency+1 buffers in all.
func (t *Target) putMultipart(ctx context.Context, name, key string, first []byte, partSize int64, r io.Reader, opts target.PutOptions) (target.ObjectInfo, error) {
	mode, until, hold := lockFields(opts)
	created, err := t.client.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{
		Bucket:                    &t.cfg.Bucket,
		Key:                       &key,
		ContentType:               aws.String("application/octet-stream"),
		ChecksumAlgorithm:         types.ChecksumAlgorithmSha256,
		ChecksumType:              types.ChecksumTypeComposite,
		Metadata:                  t.metadata(opts, ""),
		ObjectLockMode:            mode,
		ObjectLockRetainUntilDate: until,
		ObjectLockLegalHoldStatus: hold,
	})
	if err != nil {
		return target.ObjectInfo{}, t.wrap("create multipart upload", name, err)
	}
	uploadID := created.UploadId
	abort := func(cause error) (target.ObjectInfo, error) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := t.client.AbortMultipartUpload(actx, &s3api.AbortMultipartUploadInput{
			Bucket: &t.cfg.Bucket, Key: &key, UploadId: uploadID,
		}); aerr != nil {
			return target.ObjectInfo{}, fmt.Errorf("%w (and aborting the upload failed: %v)", cause, aerr)
		}
		return target.ObjectInfo{}, cause
	}

	uctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type job struct {
		num  int32
		buf  []byte
		data []byte
		sum  [32]byte
	}
	conc := t.cfg.Concurrency
	free := make(chan []byte, conc+1)
	free <- first
	allocated := 1
	jobs := make(chan job)
	var (
		mu    sync.Mutex
		parts []uploadedPart
		wg    sync.WaitGroup
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				out, err := t.client.UploadPart(uctx, &s3api.UploadPartInput{
					Bucket:            &t.cfg.Bucket,
					Key:               &key,
					UploadId:          uploadID,
					PartNumber:        aws.Int32(j.num),
					Body:              bytes.NewReader(j.data),
					ContentLength:     aws.Int64(int64(len(j.data))),
					ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
					ChecksumSHA256:    aws.String(b64(j.sum[:])),
				}, withPayloadHash(j.sum[:]))
				if err == nil {
					if got := aws.ToString(out.ChecksumSHA256); got != "" && got != b64(j.sum[:]) {
						err = fmt.Errorf("s3 target: part %d of %s: store reports SHA-256 %s, sent %s: %w", j.num, name, got, b64(j.sum[:]), target.ErrChecksum)
					}
				} else {
					err = t.wrap(fmt.Sprintf("upload part %d of", j.num), name, err)
				}
				if err != nil {
					cancel(err)
				} else {
					mu.Lock()
					parts = append(parts, uploadedPart{num: j.num, etag: aws.ToString(out.ETag), sum: j.sum})
					mu.Unlock()
				}
				free <- j.buf
			}
		}()
	}

	full := sha256.New()
	var total int64
	readErr := func() error {
		defer close(jobs)
		for num := int32(1); ; num++ {
			var buf []byte
			if num == 1 {
				buf = <-free
			} else {
				select {
				case buf = <-free:
				default:
					if allocated < conc+1 {
						buf = make([]byte, partSize)
						allocated++
					} else {
						select {
						case buf = <-free:
						case <-uctx.Done():
							return context.Cause(uctx)
						}
					}
				}
			}
			var n int
			var err error
			if num == 1 {
				n = len(buf)
			} else {
				n, err = io.ReadFull(r, buf)
				if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
					return fmt.Errorf("s3 target: reading %s: %w", name, err)
				}
			}
			if n == 0 {
				free <- buf
				return nil
			}
			if num > MaxParts {
				return fmt.Errorf("s3 target: %s needs more than %d parts of %d bytes; raise the part size or pass the size", name, MaxParts, partSize)
			}
			data := buf[:n]
			total += int64(n)
			full.Write(data)
			j := job{num: num, buf: buf, data: data, sum: sha256.Sum256(data)}
			select {
			case jobs <- j:
			case <-uctx.Done():
				return context.Cause(uctx)
			}
			if err != nil { // short read: that was the last part
				return nil
			}
		}
	}()
	wg.Wait()
	if readErr != nil {
		cancel(readErr)
	}
	if cause := context.Cause(uctx); cause != nil {
		if errors.Is(cause, context.Canceled) && ctx.Err() != nil {
			cause = fmt.Errorf("s3 target: upload of %s: %w", name, ctx.Err())
		}
		return abort(cause)
	}

	if err := checkSize(name, total, opts); err != nil {
		return abort(err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].num < parts[j].num })
	completed := make([]types.CompletedPart, len(parts))
	composite := sha256.New()
	for i, p := range parts {
		if p.num != int32(i+1) {
			return abort(fmt.Errorf("s3 target: %s: part %d missing", name, i+1))
		}
		completed[i] = types.CompletedPart{
			ETag:           aws.String(p.etag),
			PartNumber:     aws.Int32(p.num),
			ChecksumSHA256: aws.String(b64(p.sum[:])),
		}
		composite.Write(p.sum[:])
	}
	in := &s3api.CompleteMultipartUploadInput{
		Bucket:          &t.cfg.Bucket,
		Key:             &key,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	}
	if !t.cfg.AllowOverwrite {
		in.IfNoneMatch = aws.String("*")
	}
	done, err := t.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return abort(t.wrap("complete multipart upload", name, err))
	}
	want := b64(composite.Sum(nil))
	if got := aws.ToString(done.ChecksumSHA256); got != "" {
		if base, _, _ := strings.Cut(got, "-"); base != want {
			return target.ObjectInfo{}, fmt.Errorf("s3 target: %s: stored, but the store reports composite SHA-256 %s, computed %s-%d: %w", name, got, want, len(parts), target.ErrChecksum)
		}
	}
	return t.finish(ctx, name, key, total, hex.EncodeToString(full.Sum(nil)), aws.ToString(done.VersionId), opts)
}

// CompositeSHA256 is the checksum S3 reports for a multipart object: the
// base64 SHA-256 of the concatenated binary SHA-256s of its parts, then "-N".
func CompositeSHA256(partSums [][32]byte) string {
	h := sha256.New()
	for _, s := range partSums {
		h.Write(s[:])
	}
	return fmt.Sprintf("%s-%d", b64(h.Sum(nil)), len(partSums))
}

func (t *Target) infoFromHead(name string, h *s3api.HeadObjectOutput) target.ObjectInfo {
	info := target.ObjectInfo{
		Name:      name,
		Size:      aws.ToInt64(h.ContentLength),
		Modified:  aws.ToTime(h.LastModified),
		VersionID: aws.ToString(h.VersionId),
		LegalHold: h.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn,
	}
	info.Metadata, info.SHA256 = splitMeta(h.Metadata, aws.ToString(h.ChecksumSHA256))
	if h.ObjectLockMode != "" && h.ObjectLockRetainUntilDate != nil {
		info.Retention = &target.Retention{Mode: target.RetentionMode(h.ObjectLockMode), Until: *h.ObjectLockRetainUntilDate}
	}
	return info
}

// splitMeta separates the user metadata from our SHA-256 entry; a full-object
// checksum reported by the store is used when there is no entry.
func splitMeta(m map[string]string, checksum string) (map[string]string, string) {
	var sum string
	var out map[string]string
	for k, v := range m {
		if strings.EqualFold(k, metaSHA256) {
			sum = v
			continue
		}
		if out == nil {
			out = make(map[string]string, len(m))
		}
		out[k] = v
	}
	if sum == "" && checksum != "" && !strings.Contains(checksum, "-") {
		if b, err := base64.StdEncoding.DecodeString(checksum); err == nil && len(b) == sha256.Size {
			sum = hex.EncodeToString(b)
		}
	}
	return out, sum
}

// Get streams the object's content; the caller closes the reader. Object Lock
// fields are filled when the store reports them with the object.
func (t *Target) Get(ctx context.Context, name string) (io.ReadCloser, target.ObjectInfo, error) {
	key, err := t.key(name)
	if err != nil {
		return nil, target.ObjectInfo{}, err
	}
	out, err := t.client.GetObject(ctx, &s3api.GetObjectInput{
		Bucket:       &t.cfg.Bucket,
		Key:          &key,
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return nil, target.ObjectInfo{}, t.wrap("get", name, err)
	}
	info := target.ObjectInfo{
		Name:      name,
		Size:      aws.ToInt64(out.ContentLength),
		Modified:  aws.ToTime(out.LastModified),
		VersionID: aws.ToString(out.VersionId),
		LegalHold: out.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn,
	}
	info.Metadata, info.SHA256 = splitMeta(out.Metadata, aws.ToString(out.ChecksumSHA256))
	if out.ObjectLockMode != "" && out.ObjectLockRetainUntilDate != nil {
		info.Retention = &target.Retention{Mode: target.RetentionMode(out.ObjectLockMode), Until: *out.ObjectLockRetainUntilDate}
	}
	return out.Body, info, nil
}

// Stat returns an object's info, with its retention and legal hold read from
// the store.
func (t *Target) Stat(ctx context.Context, name string) (target.ObjectInfo, error) {
	key, err := t.key(name)
	if err != nil {
		return target.ObjectInfo{}, err
	}
	head, err := t.client.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &t.cfg.Bucket, Key: &key})
	if err != nil {
		return target.ObjectInfo{}, t.wrap("head", name, err)
	}
	info := t.infoFromHead(name, head)
	if info.Retention, err = t.retention(ctx, name, key, info.VersionID); err != nil {
		return target.ObjectInfo{}, err
	}
	if info.LegalHold, err = t.legalHold(ctx, name, key, info.VersionID); err != nil {
		return target.ObjectInfo{}, err
	}
	return info, nil
}

// List returns the objects (current versions) whose name starts with prefix,
// sorted by name. Sizes and times are filled; retention, legal hold and
// metadata are not (use Stat).
func (t *Target) List(ctx context.Context, prefix string) ([]target.ObjectInfo, error) {
	if strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("s3 target: list prefix %q is absolute", prefix)
	}
	full := t.prefix + prefix
	var out []target.ObjectInfo
	p := s3api.NewListObjectsV2Paginator(t.client, &s3api.ListObjectsV2Input{Bucket: &t.cfg.Bucket, Prefix: &full})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, t.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			name, ok := strings.CutPrefix(k, t.prefix)
			if !ok || checkName(name) != nil {
				continue // not something Put could have written
			}
			out = append(out, target.ObjectInfo{
				Name:     name,
				Size:     aws.ToInt64(o.Size),
				Modified: aws.ToTime(o.LastModified),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type objectVersion struct {
	id     string
	marker bool
}

func (t *Target) versions(ctx context.Context, name, key string) ([]objectVersion, error) {
	var vs []objectVersion
	p := s3api.NewListObjectVersionsPaginator(t.client, &s3api.ListObjectVersionsInput{Bucket: &t.cfg.Bucket, Prefix: &key})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, t.wrap("list versions", name, err)
		}
		for _, v := range page.Versions {
			if aws.ToString(v.Key) == key {
				vs = append(vs, objectVersion{id: aws.ToString(v.VersionId)})
			}
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) == key {
				vs = append(vs, objectVersion{id: aws.ToString(m.VersionId), marker: true})
			}
		}
	}
	return vs, nil
}

// Delete removes every version of name. It first checks each version's
// retention and legal hold and returns an error wrapping target.ErrLocked,
// deleting nothing, if any is locked; a store that refuses a delete with
// AccessDenied (the lock check raced, or a policy forbids) gives ErrLocked
// too. A name with no versions gives target.ErrNotFound.
func (t *Target) Delete(ctx context.Context, name string) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	vs, err := t.versions(ctx, name, key)
	if err != nil {
		return err
	}
	live := 0
	for _, v := range vs {
		if v.marker {
			continue
		}
		live++
		if err := t.checkUnlocked(ctx, name, key, v.id); err != nil {
			return err
		}
	}
	if live == 0 {
		return fmt.Errorf("s3 target: delete %s: %w", name, target.ErrNotFound)
	}
	// Real versions first, delete markers last, so an interrupted delete
	// leaves the name visible rather than half-removed behind a marker.
	sort.SliceStable(vs, func(i, j int) bool { return !vs[i].marker && vs[j].marker })
	for _, v := range vs {
		in := &s3api.DeleteObjectInput{Bucket: &t.cfg.Bucket, Key: &key}
		if v.id != "" {
			in.VersionId = aws.String(v.id)
		}
		if _, err := t.client.DeleteObject(ctx, in); err != nil {
			if apiCode(err) == "AccessDenied" {
				return fmt.Errorf("s3 target: delete %s (version %s): the store refused (AccessDenied), the object is under retention or legal hold: %w", name, v.id, target.ErrLocked)
			}
			return t.wrap("delete", name, err)
		}
	}
	return nil
}

// checkUnlocked returns ErrLocked if the version is under legal hold or
// unexpired retention.
func (t *Target) checkUnlocked(ctx context.Context, name, key, version string) error {
	hold, err := t.legalHold(ctx, name, key, version)
	if err != nil {
		return err
	}
	if hold {
		return fmt.Errorf("s3 target: cannot delete %s (version %s): legal hold is on: %w", name, version, target.ErrLocked)
	}
	r, err := t.retention(ctx, name, key, version)
	if err != nil {
		return err
	}
	if r != nil && r.Until.After(time.Now()) {
		return fmt.Errorf("s3 target: cannot delete %s (version %s): %s retention until %s: %w",
			name, version, r.Mode, r.Until.UTC().Format(time.RFC3339), target.ErrLocked)
	}
	return nil
}

// isNoLock reports an error meaning "this object has no retention / hold".
func isNoLock(err error) bool {
	switch apiCode(err) {
	case "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "NoSuchRetention", "NoSuchLegalHold":
		return true
	}
	return false
}

func (t *Target) retention(ctx context.Context, name, key, version string) (*target.Retention, error) {
	in := &s3api.GetObjectRetentionInput{Bucket: &t.cfg.Bucket, Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	out, err := t.client.GetObjectRetention(ctx, in)
	if err != nil {
		if isNoLock(err) {
			return nil, nil
		}
		return nil, t.wrap("get retention", name, err)
	}
	if out.Retention == nil || out.Retention.Mode == "" || out.Retention.RetainUntilDate == nil {
		return nil, nil
	}
	return &target.Retention{Mode: target.RetentionMode(out.Retention.Mode), Until: *out.Retention.RetainUntilDate}, nil
}

func (t *Target) legalHold(ctx context.Context, name, key, version string) (bool, error) {
	in := &s3api.GetObjectLegalHoldInput{Bucket: &t.cfg.Bucket, Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	out, err := t.client.GetObjectLegalHold(ctx, in)
	if err != nil {
		if isNoLock(err) {
			return false, nil
		}
		return false, t.wrap("get legal hold", name, err)
	}
	return out.LegalHold != nil && out.LegalHold.Status == types.ObjectLockLegalHoldStatusOn, nil
}

// Retention reads the current version's retention (nil if none).
func (t *Target) Retention(ctx context.Context, name string) (*target.Retention, error) {
	key, err := t.key(name)
	if err != nil {
		return nil, err
	}
	return t.retention(ctx, name, key, "")
}

// LegalHold reads whether the current version is under legal hold.
func (t *Target) LegalHold(ctx context.Context, name string) (bool, error) {
	key, err := t.key(name)
	if err != nil {
		return false, err
	}
	return t.legalHold(ctx, name, key, "")
}

// SetLegalHold places or releases the legal hold on the current version.
func (t *Target) SetLegalHold(ctx context.Context, name string, on bool) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	_, err = t.client.PutObjectLegalHold(ctx, &s3api.PutObjectLegalHoldInput{
		Bucket:            &t.cfg.Bucket,
		Key:               &key,
		LegalHold:         &types.ObjectLockLegalHold{Status: status},
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		return t.wrap("set legal hold", name, err)
	}
	return nil
}

// SetRetention sets (or, as S3 allows, extends) the current version's
// retention. Shortening COMPLIANCE retention is refused by the store.
func (t *Target) SetRetention(ctx context.Context, name string, r target.Retention) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	if err := checkRetention(&r); err != nil {
		return err
	}
	_, err = t.client.PutObjectRetention(ctx, &s3api.PutObjectRetentionInput{
		Bucket: &t.cfg.Bucket,
		Key:    &key,
		Retention: &types.ObjectLockRetention{
			Mode:            types.ObjectLockRetentionMode(r.Mode),
			RetainUntilDate: aws.Time(r.Until.UTC()),
		},
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		if apiCode(err) == "AccessDenied" {
			return fmt.Errorf("s3 target: set retention on %s: refused (AccessDenied): retention can only be extended: %w", name, target.ErrLocked)
		}
		return t.wrap("set retention", name, err)
	}
	return nil
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// wrap turns an SDK error into one that names the operation and object, wraps
// the target package's sentinel errors where one applies, and never carries
// credentials (SDK errors hold none; we add only variable names).
func (t *Target) wrap(op, name string, err error) error {
	what := op
	if name != "" {
		what += " " + name
	}
	where := fmt.Sprintf("bucket %q", t.cfg.Bucket)
	if t.cfg.Endpoint != "" {
		where += " at " + t.cfg.Endpoint
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("s3 target: %s (%s): %w", what, where, err)
	}
	code, msg := ae.ErrorCode(), ae.ErrorMessage()
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && (code == "" || code == "NotFound") {
		code = "NotFound"
	}
	switch code {
	case "NoSuchKey", "NotFound", "NoSuchVersion":
		return fmt.Errorf("s3 target: %s: %w", what, target.ErrNotFound)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidSecurity":
		return fmt.Errorf("%w (%s): %s (%s): check the values of $%s and $%s: %s",
			ErrCredentials, code, what, where, t.cfg.AccessKeyEnv, t.cfg.SecretKeyEnv, msg)
	case "NoSuchBucket":
		return fmt.Errorf("s3 target: %s: %s does not exist", what, where)
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum":
		return fmt.Errorf("s3 target: %s: store refused the checksum (%s: %s): %w", what, code, msg, target.ErrChecksum)
	case "PreconditionFailed":
		return fmt.Errorf("s3 target: %s: %w", what, target.ErrExists)
	case "InvalidBucketObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "MissingObjectLockConfiguration":
		return fmt.Errorf("s3 target: %s: %s has no Object Lock (%s: %s): %w", what, where, code, msg, target.ErrUnsupported)
	case "InvalidRequest":
		if m := strings.ToLower(msg); strings.Contains(m, "object lock") || strings.Contains(m, "objectlock") {
			return fmt.Errorf("s3 target: %s: %s has no Object Lock (%s: %s): %w", what, where, code, msg, target.ErrUnsupported)
		}
	case "AccessDenied":
		return fmt.Errorf("s3 target: %s: access denied by %s (check the permissions of the key in $%s): %s", what, where, t.cfg.AccessKeyEnv, msg)
	case "Forbidden": // a HEAD's 403: no body, so no reason given
		return fmt.Errorf("s3 target: %s: forbidden (HTTP 403) by %s: the credentials in $%s/$%s are wrong or lack permission", what, where, t.cfg.AccessKeyEnv, t.cfg.SecretKeyEnv)
	}
	return fmt.Errorf("s3 target: %s (%s): %w", what, where, err)
}
