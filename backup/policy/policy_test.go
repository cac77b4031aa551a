package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/backup/policy"
)

const good = `
region = "DE"

[[dataset]]
name = "hr"
paths = ["/srv/hr"]
classification = "confidential"
residency = "eu-only"
kek = "backups"
retention = "90d"
rpo = "24h"
rto = "4h"

[[dataset]]
name = "web"
paths = ["/srv/www", "/etc/nginx"]
classification = "internal"
residency = "encrypted-off-region-allowed"
kek = "backups"
retention = "30d"
rpo = "6h"
rto = "90m"

[[target]]
name = "local"
kind = "local"
region = "DE"
jurisdiction = "DE"
path = "/var/backups/custos"

[[target]]
name = "paris"
kind = "s3"
region = "FR"
jurisdiction = "FR"
bucket = "archives"
legal_hold = true
[target.object_lock]
mode = "COMPLIANCE"
retention = "30d"

[[target]]
name = "virginia"
kind = "s3"
region = "US"
jurisdiction = "US"
bucket = "archives-us"
prefix = "eu1/"
endpoint = "https://s3.us-east-1.amazonaws.com"
[target.object_lock]
mode = "GOVERNANCE"
retention = "7d"

[[target]]
name = "frankfurt-us-operator"
kind = "s3"
region = "DE"
jurisdiction = "US"
bucket = "x"
`

func mustParse(t *testing.T, s string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	p := mustParse(t, good)
	hr, ok := p.Dataset("hr")
	if !ok || hr.Retention.D() != 90*24*time.Hour || hr.RPO.D() != 24*time.Hour || hr.Residency != policy.EUOnly {
		t.Errorf("hr: %+v", hr)
	}
	web, _ := p.Dataset("web")
	if web.RTO.D() != 90*time.Minute || len(web.Paths) != 2 {
		t.Errorf("web: %+v", web)
	}
	paris, _ := p.Target("paris")
	if paris.ObjectLock == nil || paris.ObjectLock.Mode != policy.Compliance || paris.ObjectLock.Retention.D() != 30*24*time.Hour || !paris.LegalHold {
		t.Errorf("paris: %+v", paris)
	}
	if b, _ := hr.Retention.MarshalText(); string(b) != "90d" {
		t.Errorf("retention marshals as %q", b)
	}
}

func TestDecide(t *testing.T) {
	p := mustParse(t, good)
	for _, tc := range []struct {
		dataset, target string
		code            string // "" = allowed
		offRegion       bool
		outsideEU       bool
		why             string
	}{
		{"hr", "local", "", false, false, "both EU/EEA"},
		{"hr", "paris", "", true, false, "FR under FR law"},
		{"hr", "virginia", policy.CodeResidency, true, true, "stores data in US, outside the EU/EEA"},
		{"hr", "frankfurt-us-operator", policy.CodeResidency, false, true, "answers to US law"},
		{"web", "virginia", "", true, true, "receives ciphertext"},
		{"web", "frankfurt-us-operator", "", false, true, "receives ciphertext"},
		{"web", "paris", "", true, false, "(EU/EEA)"},
		{"hr", "tokyo", policy.CodeUnknownTarget, false, false, `no target "tokyo"`},
		{"payroll", "local", policy.CodeUnknownDataset, false, false, `no dataset "payroll"`},
	} {
		name := tc.dataset + "→" + tc.target
		dec, err := p.Decide(tc.dataset, tc.target)
		if tc.code == "" {
			if err != nil || !dec.Allowed {
				t.Errorf("%s: refused: %v", name, err)
			}
		} else {
			var re *policy.RefusedError
			if !errors.As(err, &re) || re.Code != tc.code || dec.Allowed || re.Decision.Allowed {
				t.Errorf("%s: %+v, %v; want refusal %s", name, dec, err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.dataset) {
				t.Errorf("%s: error %q does not name the dataset", name, err)
			}
		}
		if dec.OffRegion != tc.offRegion || dec.OutsideEU != tc.outsideEU {
			t.Errorf("%s: off-region %v outside-EU %v, want %v %v", name, dec.OffRegion, dec.OutsideEU, tc.offRegion, tc.outsideEU)
		}
		if !strings.Contains(dec.Why, tc.why) {
			t.Errorf("%s: why %q, want %q", name, dec.Why, tc.why)
		}
	}
	// Without a policy region, off-region means outside the EU/EEA.
	p.Region = ""
	if dec, _ := p.Decide("hr", "paris"); dec.OffRegion {
		t.Error("paris is off-region without a home region")
	}
}

func TestParseErrors(t *testing.T) {
	repl := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("no %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"unknown top key", "colour = \"red\"\n" + good, "unknown key(s): colour"},
		{"unknown dataset key", repl(`kek = "backups"`, "kek = \"backups\"\nowner = \"x\""), "unknown key(s): dataset.owner"},
		{"unknown lock key", repl(`mode = "COMPLIANCE"`, "mode = \"COMPLIANCE\"\nstrict = true"), "target.object_lock.strict"},
		{"syntax", good + "\n[[dataset]\n", "policy: toml"},
		{"residency", repl(`residency = "eu-only"`, `residency = "eu"`), `dataset 1 ("hr"): residency "eu"`},
		{"duration", repl(`retention = "90d"`, `retention = "3 months"`), `duration "3 months"`},
		{"missing rpo", repl(`rpo = "24h"`, ``), "rpo is required"},
		{"kek", repl(`kek = "backups"`, `kek = "Backups!"`), "kek:"},
		{"relative path", repl(`paths = ["/srv/hr"]`, `paths = ["srv/hr"]`), `path "srv/hr"`},
		{"dup dataset", repl(`name = "web"`, `name = "hr"`), `dataset "hr" defined twice`},
		{"dup target", repl(`name = "paris"`, `name = "local"`), `target "local" defined twice`},
		{"kind", repl(`kind = "local"`, `kind = "ftp"`), `kind "ftp"`},
		{"region", repl(`region = "FR"`, `region = "France"`), `target 2 ("paris"): region "France"`},
		{"lowercase region", repl(`region = "FR"`, `region = "fr"`), `region "fr"`},
		{"no jurisdiction", repl("jurisdiction = \"FR\"\n", ""), "jurisdiction \"\""},
		{"lock mode", repl(`mode = "COMPLIANCE"`, `mode = "compliance"`), `object_lock.mode "compliance"`},
		{"lock retention", repl(`retention = "30d"`+"\n\n[[target]]", "\n[[target]]"), "object_lock.retention is required"},
		{"local lock", repl(`path = "/var/backups/custos"`, "path = \"/var/backups/custos\"\nlegal_hold = true"), "need an s3 target"},
		{"s3 bucket", repl(`bucket = "archives"`, ``), "bucket is required"},
		{"no targets", good[:strings.Index(good, "[[target]]")], "no [[target]]"},
	} {
		_, err := policy.Parse(strings.NewReader(tc.file))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestParseWrap(t *testing.T) {
	p := mustParse(t, good)
	hr, _ := p.Dataset("hr")
	if hr.Wrap != "" || hr.WrapMode() != policy.WrapOnline {
		t.Errorf("default wrap: %q, mode %q", hr.Wrap, hr.WrapMode())
	}
	for _, mode := range []string{policy.WrapOnline, policy.WrapOffline} {
		p := mustParse(t, strings.Replace(good, `kek = "backups"`, "kek = \"backups\"\nwrap = \""+mode+"\"", 1))
		hr, _ := p.Dataset("hr")
		if hr.Wrap != mode || hr.WrapMode() != mode {
			t.Errorf("wrap %q: got %q, mode %q", mode, hr.Wrap, hr.WrapMode())
		}
		if web, _ := p.Dataset("web"); web.WrapMode() != policy.WrapOnline {
			t.Errorf("wrap %q of hr leaks to web: %q", mode, web.WrapMode())
		}
	}
	for _, bad := range []string{"Offline", "hsm", " online"} {
		_, err := policy.Parse(strings.NewReader(strings.Replace(good, `kek = "backups"`, "kek = \"backups\"\nwrap = \""+bad+"\"", 1)))
		if err == nil || !strings.Contains(err.Error(), `dataset 1 ("hr"): wrap "`+bad+`"`) || !strings.Contains(err.Error(), `"offline"`) {
			t.Errorf("wrap %q: %v", bad, err)
		}
	}
}
