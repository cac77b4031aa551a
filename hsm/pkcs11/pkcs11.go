//go:build cgo

package pkcs11

// The PKCS#11 backend. crypto11 loads and initialises the module (reference-counted per
// path), logs in, generates keys and signs with ECDSA. Our own miekg/pkcs11 sessions on
// the same slot do AES-GCM, lookups, Destroy and List: crypto11's AEAD panics on token
// errors and flattens PKCS#11 return values to strings, and we need those values to
// tell a failed tag from a lost session.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ThalesGroup/crypto11"
	"github.com/custos-eu/custos/hsm"
	"github.com/miekg/pkcs11"
)

// Open loads the PKCS#11 module c.Module (once per process), finds the token, reads the
// PIN and logs in. Errors: ErrNoPIN, ErrModule, ErrTokenNotFound, ErrWrongPIN, ErrDevice,
// or a configuration mistake, all inside an *Error with Op OpOpenToken.
//
// Several tokens of one module, and the same token more than once, may be open at the
// same time; closing one does not disturb the others. PKCS#11 logs in per token and per
// process, so opening a token already open in this process checks the PIN against the
// one that logged in rather than against the token.
//
// Recovery: when an operation fails because its sessions were lost or the library was
// finalised (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_CRYPTOKI_NOT_INITIALIZED,
// CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_USER_NOT_LOGGED_IN), the connections of
// every Token of that module are closed while no operation is in flight, and each Token
// reconnects on its next call: initialising the library if it has to, opening sessions
// and logging in again with the PIN it keeps in memory. The failed operation is retried
// once; if it fails again the error is returned, and the next call tries again.
func Open(c Config) (hsm.Token, error) {
	name := c.token()
	if err := c.valid(); err != nil {
		return nil, &hsm.Error{Op: hsm.OpOpenToken, Label: name, Err: err}
	}
	pin, err := c.pin()
	if err != nil {
		return nil, &hsm.Error{Op: hsm.OpOpenToken, Label: name, Err: err}
	}
	m, err := loadModule(c.Module)
	if err != nil {
		return nil, wrapErr(hsm.OpOpenToken, name, err)
	}
	t := &p11Token{mod: m, cfg: c, name: name, pin: pin}
	m.mu.RLock()
	defer m.mu.RUnlock()
	cn, err := t.connect()
	if err != nil {
		return nil, wrapErr(hsm.OpOpenToken, name, err)
	}
	if err := m.admit(t, cn); err != nil {
		cn.release()
		return nil, wrapErr(hsm.OpOpenToken, name, err)
	}
	t.cur = cn
	t.objMu = m.objectLock(cn)
	return t, nil
}

// Rescan makes the PKCS#11 module look for tokens again: the connections of its open
// Tokens are closed, so that the library is finalised, and each Token reconnects (and
// the library is initialised again) on its next call. SoftHSM, for one, sees tokens
// that another process (softhsm2-util) created only when it is initialised. Rescan
// waits for operations in flight; it does nothing if the module is not loaded.
func Rescan(module string) error {
	real, err := filepath.EvalSymlinks(module)
	if err == nil {
		real, err = filepath.Abs(real)
	}
	if err != nil {
		return hsm.NewError(hsm.OpRescan, "", hsm.ErrModule, err.Error())
	}
	modules.Lock()
	m := modules.m[real]
	modules.Unlock()
	if m != nil {
		m.mu.Lock()
		m.restartLocked()
		m.mu.Unlock()
	}
	return nil
}

// module is one PKCS#11 library, shared by every token opened from it in this process.
type module struct {
	path string
	p    *pkcs11.Ctx // our handle on the library; crypto11 holds its own

	// mu is held for reading by every operation, Open and Close of every Token of this
	// module, and for writing by restartLocked.
	mu sync.RWMutex

	openMu sync.Mutex
	open   map[*p11Token]*conn      // open tokens, to check the PIN of a second Open
	objMu  map[string]*sync.RWMutex // per token; see objectLock
}

var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

// loadModule returns the process's module for path. Symbolic links are resolved first
// so that two spellings of one library share a single reference count in crypto11,
// which finalises the library when its count reaches zero.
func loadModule(path string) (*module, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, &fault{hsm.ErrModule, err}
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil, &fault{hsm.ErrModule, err}
	}
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[real]; m != nil {
		return m, nil
	}
	p := pkcs11.New(real)
	if p == nil {
		return nil, &fault{hsm.ErrModule, fmt.Errorf("cannot load %s or find C_GetFunctionList in it", real)}
	}
	// The module stays loaded for the life of the process; crypto11 initialises and
	// finalises it.
	m := &module{path: real, p: p, open: map[*p11Token]*conn{}, objMu: map[string]*sync.RWMutex{}}
	modules.m[real] = m
	return m, nil
}

// restartLocked closes the connection of every open Token of the module; each
// reconnects on its next call. When the last crypto11 context goes, crypto11 finalises
// the library, and the next connection initialises it again.
//
// The caller holds m.mu for writing, so no operation is in flight and every session
// handle of every connection is either still ours or already invalid. Closing them all
// cannot close a live session of ours, even where the library has handed a stale number
// out again (SoftHSM restarts its numbering after C_Initialize).
func (m *module) restartLocked() {
	m.openMu.Lock()
	toks := slices.Collect(maps.Keys(m.open))
	m.openMu.Unlock()
	for _, t := range toks {
		t.mu.Lock()
		if t.cur != nil {
			t.cur.release()
			t.cur = nil
		}
		t.mu.Unlock()
	}
}

// admit records t as open, after checking its PIN against any other open Token of the
// same token: PKCS#11 login is per process, so crypto11's C_Login only said
// CKR_USER_ALREADY_LOGGED_IN and did not check it.
func (m *module) admit(t *p11Token, cn *conn) error {
	m.openMu.Lock()
	defer m.openMu.Unlock()
	for o, oc := range m.open {
		if oc.slot == cn.slot && subtle.ConstantTimeCompare([]byte(o.pin), []byte(t.pin)) != 1 {
			return &fault{hsm.ErrWrongPIN, errors.New("PIN differs from the one this process logged in with")}
		}
	}
	m.open[t] = cn
	return nil
}

func (m *module) leave(t *p11Token) {
	m.openMu.Lock()
	delete(m.open, t)
	m.openMu.Unlock()
}

// objectLock returns the token's lock, shared by every Token of it in this process.
// Creating and destroying keys hold it for writing, every other operation for reading.
// That makes "is the label free? then create" atomic (within this process only), and
// keeps object creation apart from searches and attribute reads, which SoftHSM 2.6
// cannot run at the same time (softhsm/SoftHSMv2#573: CKR_GENERAL_ERROR). Keys are
// created and destroyed rarely, in ceremonies, so the cost is small.
func (m *module) objectLock(cn *conn) *sync.RWMutex {
	key := fmt.Sprintf("%d\x00%s", cn.slot, cn.serial)
	m.openMu.Lock()
	defer m.openMu.Unlock()
	l := m.objMu[key]
	if l == nil {
		l = new(sync.RWMutex)
		m.objMu[key] = l
	}
	return l
}

// p11Token implements Token. Lock order: objMu, then mod.mu, then mu, then mod.openMu.
type p11Token struct {
	mod   *module
	cfg   Config
	name  string        // token label or "slot N", for errors and logs
	objMu *sync.RWMutex // see objectLock

	mu     sync.RWMutex // read: an operation uses cur; write: cur is replaced, Close
	cur    *conn        // nil after a restart or a failed reconnect: the next call connects
	closed bool
	pin    string // kept to log in again after recovery
}

// conn is one generation of a Token's connection: a crypto11 context and our own
// sessions on the same slot, and the object handles found through them.
type conn struct {
	p      *pkcs11.Ctx
	c11    *crypto11.Context
	slot   uint
	serial string
	idle   chan pkcs11.SessionHandle

	mu      sync.Mutex
	aesKeys map[string]pkcs11.ObjectHandle
	signers map[string]crypto11.Signer
}

const idleSessions = 64 // our sessions kept open per token, beyond those crypto11 pools

// connect opens a new connection. The caller holds t.mod.mu for reading.
func (t *p11Token) connect() (*conn, error) {
	cfg := &crypto11.Config{Path: t.mod.path, Pin: t.pin}
	if t.cfg.Slot != nil {
		n := int(*t.cfg.Slot)
		cfg.SlotNumber = &n
	} else {
		cfg.TokenLabel = t.cfg.TokenLabel
	}
	c11, err := crypto11.Configure(cfg)
	if err != nil {
		// crypto11 reports these two without a PKCS#11 return value.
		switch msg := err.Error(); {
		case msg == "could not find PKCS#11 token":
			return nil, &fault{hsm.ErrTokenNotFound, err}
		case strings.HasPrefix(msg, "failed to create module context") && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED):
			return nil, &fault{hsm.ErrModule, err}
		}
		return nil, err
	}
	cn := &conn{
		p:       t.mod.p,
		c11:     c11,
		idle:    make(chan pkcs11.SessionHandle, idleSessions),
		aesKeys: map[string]pkcs11.ObjectHandle{},
		signers: map[string]crypto11.Signer{},
	}
	if cn.slot, cn.serial, err = t.findSlot(); err != nil {
		_ = c11.Close()
		return nil, err
	}
	return cn, nil
}

// findSlot finds the slot crypto11 chose: the first with the configured label.
func (t *p11Token) findSlot() (uint, string, error) {
	slots, err := t.mod.p.GetSlotList(true)
	if err != nil {
		return 0, "", err
	}
	for _, s := range slots {
		if t.cfg.Slot != nil && s != *t.cfg.Slot {
			continue
		}
		ti, err := t.mod.p.GetTokenInfo(s)
		if err != nil {
			return 0, "", err
		}
		if t.cfg.Slot != nil || ti.Label == t.cfg.TokenLabel {
			return s, ti.SerialNumber, nil
		}
	}
	return 0, "", hsm.ErrTokenNotFound
}

// release closes the connection's sessions and its crypto11 context.
func (c *conn) release() {
	for {
		select {
		case s := <-c.idle:
			_ = c.p.CloseSession(s)
		default:
			_ = c.c11.Close()
			return
		}
	}
}

// faultHook, set by tests, runs before each operation attempt; a non-nil result stands
// in for the attempt's error.
var faultHook atomic.Pointer[func(op string) error]

// do runs fn on the current connection, and once more on a fresh one if fn failed in a
// way that new sessions, a new login or a newly initialised library may cure. It holds
// the token's object lock for reading, or for writing when op creates or destroys keys.
func (t *p11Token) do(op, label string, fn func(*conn) error) error {
	switch op {
	case hsm.OpGenerateAESKey, hsm.OpGenerateSigner, hsm.OpDestroy:
		t.objMu.Lock()
		defer t.objMu.Unlock()
	default:
		t.objMu.RLock()
		defer t.objMu.RUnlock()
	}
	for attempt := 0; ; attempt++ {
		c, release, err := t.acquire()
		if err == nil {
			if h := faultHook.Load(); h != nil {
				err = (*h)(op)
			}
			if err == nil {
				err = fn(c)
			}
			release()
		}
		if err == nil {
			return nil
		}
		if attempt > 0 || !needsReopen(err) {
			return wrapErr(op, label, err)
		}
		slog.Warn("hsm: reconnecting after a fault", "token", t.name, "op", op, "cause", err.Error())
		t.reopen(c, err)
	}
}

// acquire returns the current connection, connecting first if there is none, with
// t.mod.mu and t.mu held for reading until release is called.
func (t *p11Token) acquire() (c *conn, release func(), err error) {
	for range 3 {
		t.mod.mu.RLock()
		t.mu.RLock()
		if t.closed {
			t.mu.RUnlock()
			t.mod.mu.RUnlock()
			return nil, nil, hsm.ErrClosed
		}
		if c := t.cur; c != nil {
			return c, func() { t.mu.RUnlock(); t.mod.mu.RUnlock() }, nil
		}
		t.mu.RUnlock()
		t.mu.Lock()
		if !t.closed && t.cur == nil {
			t.cur, err = t.connect()
			if err == nil {
				t.mod.openMu.Lock()
				t.mod.open[t] = t.cur
				t.mod.openMu.Unlock()
			}
		}
		t.mu.Unlock()
		t.mod.mu.RUnlock()
		if err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, &fault{hsm.ErrDevice, errors.New("connection replaced three times while connecting")}
}

// reopen closes every connection of the module after stale, t's connection, failed with
// cause; acquire then reconnects. If stale is no longer current, someone has done it.
// A failure to connect restarts the module only when the library is not initialised
// (crypto11 still holds it, though someone finalised it): other causes, such as a
// missing token, are t's alone.
func (t *p11Token) reopen(stale *conn, cause error) {
	m := t.mod
	m.mu.Lock()
	defer m.mu.Unlock()
	t.mu.RLock()
	current := t.cur == stale
	t.mu.RUnlock()
	if current && (stale != nil || isCode(cause, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)) {
		m.restartLocked()
	}
}

// Close releases the token's sessions. The module is finalised when the last Token of
// it closes.
func (t *p11Token) Close() error {
	t.mod.mu.RLock()
	defer t.mod.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.mod.leave(t)
	t.pin = ""
	if t.cur != nil {
		t.cur.release()
		t.cur = nil
	}
	return nil
}

// withSession runs fn on one of c's own sessions.
func (c *conn) withSession(fn func(s pkcs11.SessionHandle) error) error {
	var s pkcs11.SessionHandle
	select {
	case s = <-c.idle:
	default:
		var err error
		if s, err = c.p.OpenSession(c.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
			return err
		}
	}
	err := fn(s)
	if needsReopen(err) {
		return err // the whole connection is replaced; see release
	}
	select {
	case c.idle <- s:
	default:
		_ = c.p.CloseSession(s)
	}
	return err
}

// find returns the handles of the objects matching tmpl.
func (c *conn) find(s pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := c.p.FindObjectsInit(s, tmpl); err != nil {
		return nil, err
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := c.p.FindObjects(s, 64)
		if err != nil {
			_ = c.p.FindObjectsFinal(s)
			return nil, err
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	return all, c.p.FindObjectsFinal(s)
}

// absent is what a search that found nothing means: ErrKeyNotFound if the session is
// logged in, and CKR_USER_NOT_LOGGED_IN (which reopens) if not, since private objects
// are invisible without a login.
func (c *conn) absent(s pkcs11.SessionHandle) error {
	info, err := c.p.GetSessionInfo(s)
	if err != nil {
		return err
	}
	if info.State != pkcs11.CKS_RO_USER_FUNCTIONS && info.State != pkcs11.CKS_RW_USER_FUNCTIONS {
		return pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)
	}
	return hsm.ErrKeyNotFound
}

// labelFree returns ErrKeyExists if any object has label.
func (c *conn) labelFree(label string) error {
	return c.withSession(func(s pkcs11.SessionHandle) error {
		hs, err := c.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
		if err != nil {
			return err
		}
		if len(hs) > 0 {
			return hsm.ErrKeyExists
		}
		if err := c.absent(s); !errors.Is(err, hsm.ErrKeyNotFound) {
			return err
		}
		return nil
	})
}

func (c *conn) forget(label string) {
	c.mu.Lock()
	delete(c.aesKeys, label)
	delete(c.signers, label)
	c.mu.Unlock()
}

// withAESKey runs fn with a session and the handle of the AES key label. If the cached
// handle has gone stale, it finds the key again and retries once.
func (c *conn) withAESKey(label string, fn func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error) error {
	return c.withSession(func(s pkcs11.SessionHandle) error {
		for i := 0; ; i++ {
			c.mu.Lock()
			h, ok := c.aesKeys[label]
			c.mu.Unlock()
			if !ok {
				hs, err := c.find(s, []*pkcs11.Attribute{
					pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
					pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
					pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				})
				switch {
				case err != nil:
					return err
				case len(hs) == 0:
					return c.absent(s)
				case len(hs) > 1:
					return &fault{hsm.ErrDevice, fmt.Errorf("%d AES keys share the label", len(hs))}
				}
				h = hs[0]
				c.mu.Lock()
				c.aesKeys[label] = h
				c.mu.Unlock()
			}
			err := fn(s, h)
			if i == 0 && isHandleInvalid(err) {
				c.forget(label)
				continue
			}
			return err
		}
	})
}

// signer returns the crypto11 key pair with label.
func (c *conn) signer(label string) (crypto11.Signer, error) {
	c.mu.Lock()
	k := c.signers[label]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	ks, err := c.c11.FindKeyPairs(nil, []byte(label))
	if err != nil {
		return nil, err
	}
	ks = slices.DeleteFunc(ks, func(k crypto11.Signer) bool {
		_, ok := k.Public().(*ecdsa.PublicKey)
		return !ok
	})
	switch len(ks) {
	case 0:
		return nil, c.withSession(c.absent)
	case 1:
	default:
		return nil, &fault{hsm.ErrDevice, fmt.Errorf("%d ECDSA key pairs share the label", len(ks))}
	}
	c.mu.Lock()
	c.signers[label] = ks[0]
	c.mu.Unlock()
	return ks[0], nil
}

// Attributes of the keys we generate, beyond label and ID.
var (
	aesAttrs = map[crypto11.AttributeType]any{
		pkcs11.CKA_TOKEN:       true,
		pkcs11.CKA_PRIVATE:     true,
		pkcs11.CKA_SENSITIVE:   true,
		pkcs11.CKA_EXTRACTABLE: false,
		pkcs11.CKA_ENCRYPT:     true,
		pkcs11.CKA_DECRYPT:     true,
		pkcs11.CKA_WRAP:        false,
		pkcs11.CKA_UNWRAP:      false,
		pkcs11.CKA_DERIVE:      false,
	}
	ecPublicAttrs = map[crypto11.AttributeType]any{
		pkcs11.CKA_TOKEN:   true,
		pkcs11.CKA_PRIVATE: false,
		pkcs11.CKA_VERIFY:  true,
	}
	ecPrivateAttrs = map[crypto11.AttributeType]any{
		pkcs11.CKA_TOKEN:       true,
		pkcs11.CKA_PRIVATE:     true,
		pkcs11.CKA_SENSITIVE:   true,
		pkcs11.CKA_EXTRACTABLE: false,
		pkcs11.CKA_SIGN:        true,
		pkcs11.CKA_DERIVE:      false,
	}
)

// template returns label, a fresh random CKA_ID and attrs.
func template(label string, id []byte, attrs map[crypto11.AttributeType]any) (crypto11.AttributeSet, error) {
	set, err := crypto11.NewAttributeSetWithIDAndLabel(id, []byte(label))
	if err != nil {
		return nil, err
	}
	for typ, v := range attrs {
		if err := set.Set(typ, v); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func newID() []byte {
	id := make([]byte, 16)
	_, _ = rand.Read(id) // crypto/rand.Read does not fail
	return id
}

func (t *p11Token) GenerateAESKey(label string) error {
	if err := hsm.CheckLabel(label); err != nil {
		return &hsm.Error{Op: hsm.OpGenerateAESKey, Label: label, Err: err}
	}
	return t.do(hsm.OpGenerateAESKey, label, func(c *conn) error {
		if err := c.labelFree(label); err != nil {
			return err
		}
		tmpl, err := template(label, newID(), aesAttrs)
		if err != nil {
			return err
		}
		_, err = c.c11.GenerateSecretKeyWithAttributes(tmpl, 256, crypto11.CipherAES)
		return err
	})
}

func (t *p11Token) GenerateSigner(label string) (crypto.Signer, error) {
	if err := hsm.CheckLabel(label); err != nil {
		return nil, &hsm.Error{Op: hsm.OpGenerateSigner, Label: label, Err: err}
	}
	var pub *ecdsa.PublicKey
	err := t.do(hsm.OpGenerateSigner, label, func(c *conn) error {
		if err := c.labelFree(label); err != nil {
			return err
		}
		id := newID()
		public, err := template(label, id, ecPublicAttrs)
		if err != nil {
			return err
		}
		private, err := template(label, id, ecPrivateAttrs)
		if err != nil {
			return err
		}
		k, err := c.c11.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P256())
		if err != nil {
			return err
		}
		pub = k.Public().(*ecdsa.PublicKey)
		c.mu.Lock()
		c.signers[label] = k
		c.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p11Signer{t: t, label: label, pub: pub}, nil
}

func (t *p11Token) Signer(label string) (crypto.Signer, error) {
	if err := hsm.CheckLabel(label); err != nil {
		return nil, &hsm.Error{Op: hsm.OpFindSigner, Label: label, Err: err}
	}
	var pub *ecdsa.PublicKey
	err := t.do(hsm.OpFindSigner, label, func(c *conn) error {
		k, err := c.signer(label)
		if err != nil {
			return err
		}
		pub = k.Public().(*ecdsa.PublicKey)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p11Signer{t: t, label: label, pub: pub}, nil
}

// p11Signer is a crypto.Signer for one key pair, found by label on each connection and
// checked against the public key it was created with.
type p11Signer struct {
	t     *p11Token
	label string
	pub   *ecdsa.PublicKey
}

func (s *p11Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs digest, which must be opts.HashFunc().Size() bytes long when opts names a
// hash. The token draws the ECDSA nonce, so rand is ignored. Errors: ErrKeyNotFound once
// the key pair is destroyed; ErrClosed; ErrDevice.
func (s *p11Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest(digest, opts); err != nil {
		return nil, &hsm.Error{Op: hsm.OpSign, Label: s.label, Err: err}
	}
	var sig []byte
	err := s.t.do(hsm.OpSign, s.label, func(c *conn) error {
		for i := 0; ; i++ {
			k, err := c.signer(s.label)
			if err != nil {
				return err
			}
			if !s.pub.Equal(k.Public()) {
				return hsm.ErrKeyNotFound // destroyed, and the label reused
			}
			sig, err = k.Sign(nil, digest, opts)
			if i == 0 && isHandleInvalid(err) {
				c.forget(s.label)
				continue
			}
			return err
		}
	})
	return sig, err
}

func (t *p11Token) Seal(label string, plaintext, aad []byte) ([]byte, error) {
	if err := hsm.CheckLabel(label); err != nil {
		return nil, &hsm.Error{Op: hsm.OpSeal, Label: label, Err: err}
	}
	var out []byte
	err := t.do(hsm.OpSeal, label, func(c *conn) error {
		return c.withAESKey(label, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
			// A fresh nonce for every attempt, so a retry never reuses one.
			nonce := make([]byte, hsm.NonceSize, hsm.NonceSize+len(plaintext)+hsm.TagSize)
			_, _ = rand.Read(nonce)
			params := pkcs11.NewGCMParams(nonce, aad, hsm.TagSize*8)
			defer params.Free()
			if err := c.p.EncryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, h); err != nil {
				return err
			}
			ct, err := c.p.Encrypt(s, plaintext)
			if err != nil {
				return err
			}
			// Some HSMs ignore the caller's IV and choose their own.
			if len(ct) != len(plaintext)+hsm.TagSize || !bytes.Equal(params.IV(), nonce) {
				return &fault{hsm.ErrDevice, errors.New("token did not use the supplied GCM nonce")}
			}
			out = append(nonce, ct...)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *p11Token) Open(label string, sealed, aad []byte) ([]byte, error) {
	if err := hsm.CheckLabel(label); err != nil {
		return nil, &hsm.Error{Op: hsm.OpOpen, Label: label, Err: err}
	}
	if len(sealed) < hsm.Overhead {
		return nil, &hsm.Error{Op: hsm.OpOpen, Label: label, Err: hsm.ErrOpen}
	}
	var pt []byte
	err := t.do(hsm.OpOpen, label, func(c *conn) error {
		return c.withAESKey(label, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
			params := pkcs11.NewGCMParams(sealed[:hsm.NonceSize], aad, hsm.TagSize*8)
			defer params.Free()
			if err := c.p.DecryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, h); err != nil {
				return err
			}
			var err error
			pt, err = c.p.Decrypt(s, sealed[hsm.NonceSize:])
			// SoftHSM reports a bad tag as CKR_GENERAL_ERROR; others as
			// CKR_ENCRYPTED_DATA_INVALID.
			if isCode(err, pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, pkcs11.CKR_GENERAL_ERROR) {
				return &fault{hsm.ErrOpen, err}
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

func (t *p11Token) Destroy(label string) error {
	if err := hsm.CheckLabel(label); err != nil {
		return &hsm.Error{Op: hsm.OpDestroy, Label: label, Err: err}
	}
	return t.do(hsm.OpDestroy, label, func(c *conn) error {
		c.forget(label)
		return c.withSession(func(s pkcs11.SessionHandle) error {
			hs, err := c.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
			if err != nil {
				return err
			}
			if len(hs) == 0 {
				return c.absent(s)
			}
			for _, h := range hs {
				if err := c.p.DestroyObject(s, h); err != nil && !isHandleInvalid(err) {
					return err
				}
			}
			return nil
		})
	})
}

func (t *p11Token) List() ([]hsm.KeyInfo, error) {
	var keys []hsm.KeyInfo
	err := t.do(hsm.OpList, "", func(c *conn) error {
		keys = keys[:0]
		return c.withSession(func(s pkcs11.SessionHandle) error {
			if err := c.absent(s); !errors.Is(err, hsm.ErrKeyNotFound) {
				return err // not logged in: the list would lack every private object
			}
			for _, k := range []struct {
				kind       hsm.KeyKind
				class, typ uint
			}{
				{hsm.KindAES, pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES},
				{hsm.KindECDSA, pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_EC},
			} {
				hs, err := c.find(s, []*pkcs11.Attribute{
					pkcs11.NewAttribute(pkcs11.CKA_CLASS, k.class),
					pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, k.typ),
				})
				if err != nil {
					return err
				}
				for _, h := range hs {
					attrs, err := c.p.GetAttributeValue(s, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
					if isHandleInvalid(err) {
						continue // destroyed meanwhile
					}
					if err != nil {
						return err
					}
					if label := string(attrs[0].Value); label != "" {
						keys = append(keys, hsm.KeyInfo{Label: label, Kind: k.kind})
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortKeys(keys)
	return keys, nil
}

// fault is an error of a known kind (a sentinel) with its raw cause, which goes to
// Detail and never into the message.
type fault struct{ kind, cause error }

func (f *fault) Error() string { return f.kind.Error() + ": " + f.cause.Error() }

// wrapErr turns an internal error into an *Error whose Err is one of our sentinels or
// our own text, never a PKCS#11 code.
func wrapErr(op, label string, err error) error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*hsm.Error](err); ok {
		return e
	}
	var rv pkcs11.Error
	switch f, isFault := errors.AsType[*fault](err); {
	case isFault:
		return hsm.NewError(op, label, f.kind, f.cause.Error())
	case errors.As(err, &rv):
		return hsm.NewError(op, label, kindOf(op, rv), err.Error())
	case isSentinel(err):
		return &hsm.Error{Op: op, Label: label, Err: err}
	default:
		return hsm.NewError(op, label, hsm.ErrDevice, err.Error())
	}
}

func isSentinel(err error) bool {
	for _, s := range []error{hsm.ErrKeyNotFound, hsm.ErrKeyExists, hsm.ErrWrongPIN, hsm.ErrTokenNotFound, hsm.ErrDevice, hsm.ErrOpen, hsm.ErrNoPIN, hsm.ErrModule, hsm.ErrClosed} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// kindOf maps a PKCS#11 return value to the sentinel callers branch on.
func kindOf(op string, rv pkcs11.Error) error {
	switch rv {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE,
		pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_PIN_LOCKED:
		return hsm.ErrWrongPIN
	case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_DEVICE_REMOVED:
		if op == hsm.OpOpenToken {
			return hsm.ErrTokenNotFound
		}
	case pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return hsm.ErrKeyNotFound
	}
	return hsm.ErrDevice
}

// needsReopen reports whether err means the connection, not the request, is at fault.
func needsReopen(err error) bool {
	return isCode(err,
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_USER_NOT_LOGGED_IN)
}

func isHandleInvalid(err error) bool {
	return isCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID)
}

// isCode reports whether err is, or wraps, one of the PKCS#11 return values.
func isCode(err error, codes ...uint) bool {
	var rv pkcs11.Error
	if _, isFault := err.(*fault); isFault || !errors.As(err, &rv) {
		return false
	}
	return slices.Contains(codes, uint(rv))
}

// checkDigest rejects a digest whose length does not match the hash opts names.
func checkDigest(digest []byte, opts crypto.SignerOpts) error {
	if opts == nil || opts.HashFunc() == 0 {
		return nil
	}
	if h := opts.HashFunc(); len(digest) != h.Size() {
		return fmt.Errorf("digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	return nil
}

// sortKeys sorts by label, then kind.
func sortKeys(keys []hsm.KeyInfo) {
	slices.SortFunc(keys, func(a, b hsm.KeyInfo) int {
		if c := strings.Compare(a.Label, b.Label); c != 0 {
			return c
		}
		return int(a.Kind - b.Kind)
	})
}
