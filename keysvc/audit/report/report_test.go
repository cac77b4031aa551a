package report

// The custody report of a busy pack (many ceremonies, long ids, restore
// drills): its restore drills, and the report as a person sees it, rendered
// by a real browser in a 1280 px window and printed to A4, every table
// whole.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custos-eu/custos/keysvc/audit"
	"github.com/custos-eu/custos/keysvc/audit/audittest"
	"github.com/custos-eu/custos/keysvc/ceremony"
	"github.com/custos-eu/custos/keysvc/ledger"
)

// busyReport is the custody report of a fake pack with something in every
// section, and long values wherever a log can hold them: KEK ids of 64
// bytes, agent identities, officer ids, checksums, reasons, ceremony
// descriptions; and restore drills of four datasets (one never drilled).
func busyReport(t *testing.T) *Report {
	t.Helper()
	const cluster = "custos-eu-central-production-frankfurt"
	f := audittest.NewLog(t, cluster, 2)
	hexOf := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	officers := []string{"alice.schmidt-security-officer-frankfurt", "bogdan.nowak-security-officer-warsaw", "carla.rossi-security-officer-milan"}
	agent := ledger.Actor{Identity: "custos://" + cluster + "/agent/backup-agent-payroll-ledger-exports-frankfurt-01?region=DE", Role: "agent", Region: "DE",
		CertFingerprint: "sha256:" + hexOf("agent")}
	officerActor := func(o string) ledger.Actor {
		return ledger.Actor{Identity: "custos://" + cluster + "/officer/" + o + "?region=DE", Role: "officer", Region: "DE"}
	}
	keks := []string{
		"payroll-ledger-exports-eu-central-frankfurt-quarterly-2026-q4-v1",
		"hr-personnel-files-and-contracts-archive-eu-central-frankfurt-01",
		"crm",
	}
	var contents audit.Contents
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Ceremonies: each KEK created, then rotations, legal holds and
	// policy changes, each proposed, approved by two officers and executed.
	var ops []ceremony.Params
	pol := ceremony.Policy{Threshold: 2, ActivationTTL: 5 * time.Minute,
		Unwrap:  ceremony.Access{Identities: []string{"agent/backup-agent-payroll-ledger-exports-frankfurt-01"}, Regions: []string{"DE", "FR", "NL"}},
		Wrap:    ceremony.Access{Roles: []string{"agent"}, Regions: []string{"DE", "FR", "NL"}},
		Context: []string{"classification", "dataset"}, Escrow: ceremony.Escrow{Enabled: true, M: 2}}
	for _, k := range keks {
		ops = append(ops, ceremony.KEKCreate{KEKID: k, Policy: pol})
	}
	for i := range 24 {
		k := keks[i%len(keks)]
		switch i % 4 {
		case 0, 1:
			ops = append(ops, ceremony.KEKRotate{KEKID: k})
		case 2:
			ops = append(ops, ceremony.LegalHoldSet{KEKID: k, Reason: fmt.Sprintf("Case LG-Frankfurt-2026-%04d: preservation order of the regional court, counsel reference DPO/2026/%d/retention", i, i)})
		case 3:
			ops = append(ops, ceremony.LegalHoldRelease{KEKID: k, Reason: "preservation order lifted by the regional court; counsel confirmed in writing"})
		}
	}
	version := map[string]int{}
	for i, p := range ops {
		at := created.Add(time.Duration(len(f.Entries)) * time.Second)
		prop := ceremony.Proposal{Cluster: cluster, ID: fmt.Sprintf("%032x", 0xc0ffee000+i), Params: p, Proposer: officers[i%3],
			Created: at, Expires: at.Add(24 * time.Hour), StateVersion: uint64(10 + i)}
		raw, err := prop.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		d := map[string]string{"proposal.id": prop.ID, "proposal.operation": string(prop.Operation()), "proposal.proposer": prop.Proposer}
		proposed := uint64(len(f.Entries))
		f.Add(t, ledger.Entry{Type: ledger.TypePropose, Actor: officerActor(prop.Proposer), Node: "n1", Outcome: ledger.OutcomeOK, Details: d})
		approvers := []string{officers[(i+1)%3], officers[(i+2)%3]}
		var approvals []audit.Approval
		for _, o := range approvers {
			ad := map[string]string{"proposal.id": prop.ID, "officer": o}
			approvals = append(approvals, audit.Approval{Officer: o, Entry: uint64(len(f.Entries))})
			f.Add(t, ledger.Entry{Type: ledger.TypeApprove, Actor: officerActor(o), Node: "n1", Outcome: ledger.OutcomeOK, Details: ad})
		}
		ed := map[string]string{"proposal.id": prop.ID, "proposal.operation": string(prop.Operation()), "proposal.proposer": prop.Proposer,
			"approvers": strings.Join(approvers, ",")}
		switch p := p.(type) {
		case ceremony.KEKCreate:
			version[p.KEKID] = 1
			ed["kek.id"], ed["kek.version"] = p.KEKID, "1"
		case ceremony.KEKRotate:
			version[p.KEKID]++
			ed["kek.id"], ed["kek.version"] = p.KEKID, fmt.Sprint(version[p.KEKID])
		case ceremony.LegalHoldSet:
			ed["kek.id"], ed["legal_hold.reason"] = p.KEKID, p.Reason
		case ceremony.LegalHoldRelease:
			ed["kek.id"], ed["legal_hold.reason"] = p.KEKID, p.Reason
		}
		if v, ok := ed["kek.version"]; ok {
			ed["kek.threshold"], ed["kek.holders"], ed["kek.escrow"] = "2", "n1,n2,n3", "2 of "+strings.Join(officers, ",")
			ed["kek.public_key"] = "sha256:" + hexOf(ed["kek.id"]+v)
		}
		closed := uint64(len(f.Entries))
		f.Add(t, ledger.Entry{Type: ledger.TypeExecute, Actor: officerActor(approvers[1]), Node: "n1", Outcome: ledger.OutcomeOK, Details: ed})
		contents.Ceremonies = append(contents.Ceremonies, audit.Ceremony{ID: prop.ID, Proposal: string(raw), Approvals: approvals,
			Status: "executed", Proposed: proposed, Closed: closed})
	}
	for _, o := range officers {
		contents.Officers = append(contents.Officers, audit.Officer{ID: o, Fingerprint: "sha256:" + hexOf(o)})
	}
	// Key operations, a denial, transfers of four datasets.
	for i := range 12 {
		f.Add(t, ledger.Entry{Type: ledger.TypeUnwrap, Actor: agent, Node: "n1", KEKID: keks[i%2], KEKVersion: 2, RequestID: fmt.Sprintf("%032x", i),
			Outcome: ledger.OutcomeOK, Details: map[string]string{"context": "sha256:" + hexOf(fmt.Sprint(i))}})
	}
	f.Add(t, ledger.Entry{Type: ledger.TypeUnwrap, Actor: agent, Node: "n1", KEKID: keks[0], KEKVersion: 2, Outcome: ledger.OutcomeDenied,
		Reason: "unwrap_failed: the wrapped key does not open under this context (dataset=payroll-ledger-exports, classification=confidential)"})
	datasets := []string{"payroll-ledger-exports-eu-central-frankfurt-quarterly", "hr", "crm", "finance-general-ledger"}
	for i, ds := range datasets {
		f.Add(t, ledger.Entry{Type: ledger.TypeTransfer, Actor: agent, Node: "n1", KEKID: keks[i%2], KEKVersion: 2, Outcome: ledger.OutcomeOK,
			Details: map[string]string{"archive": archiveID(ds, i), "dataset": ds, "sha256": hexOf(ds), "size": "73400320",
				"target": "s3-object-lock-eu-west-paris-backup-vault-02", "region": "FR",
				"decision": "dataset policy eu-only-ciphertext allows FR: EU/EEA region, ciphertext only, Object Lock retention 400 days", "wrap": "online"}})
	}
	// Restore drills: payroll drilled four times (an early one of the
	// earlier format, without RTO; a failure; an ok one; the last over its
	// RTO), hr once in time, crm once in a format without restore time,
	// finance never.
	drill := func(ds string, n int, result, secs, rto string) {
		d := map[string]string{"archive": archiveID(ds, n), "dataset": ds, "result": result}
		if secs != "" {
			d["restore_seconds"] = secs
		}
		if rto != "" {
			d["rto_seconds"], d["target"] = rto, "s3-object-lock-eu-west-paris-backup-vault-02"
		}
		out := ledger.OutcomeOK
		if result != "ok" {
			out = ledger.OutcomeError
		}
		f.Add(t, ledger.Entry{Type: ledger.TypeDrill, Actor: agent, Node: "n1", KEKID: keks[0], KEKVersion: 2, Outcome: out, Details: d})
	}
	pay := datasets[0]
	drill(pay, 1, "ok", "812.402", "")
	drill(pay, 2, "failed: integrity check", "3.004", "14400")
	drill(pay, 3, "ok", "901.117", "14400")
	drill("hr", 1, "ok", "42.250", "3600")
	drill(pay, 4, "restored, but in 4h12m9s, over the RTO of 4h0m0s", "15129.884", "14400")
	drill("crm", 1, "ok", "", "")
	contents.Header = audit.Header{Cluster: cluster, Origin: "custos/" + cluster, From: 0, To: uint64(len(f.Entries)), Created: created.Add(48 * time.Hour)}
	contents.Checkpoint = f.Checkpoint(t, len(f.Entries), nil)

	r := &Report{Pack: "/srv/audit/evidence/" + cluster + "/pack-2026-q4-from-0.jsonl", PackSHA256: hexOf("pack"), Generated: created.Add(49 * time.Hour),
		Verification: "The pack was not verified: the report was made with --no-verify."}
	b := newReportBuilder(r)
	b.followReleases(contents.Header, nil)
	for _, raw := range f.Entries {
		e, err := ledger.ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.entry(e); err != nil {
			t.Fatal(err)
		}
	}
	b.contents(&contents)
	b.finish()
	return r
}

// archiveID is an archive id as the agent makes them (time and random
// hex), the nth of dataset.
func archiveID(dataset string, n int) string {
	h := sha256.Sum256([]byte(dataset))
	return fmt.Sprintf("202612%02dT100003Z-%x", n, h[:8])
}

func TestReportDrills(t *testing.T) {
	r := busyReport(t)
	if r.DrillTotal != 6 || r.DrillMisses != 2 || r.Undrilled != 1 || len(r.Drills) != 4 || len(r.MissedDrills) != 2 {
		t.Fatalf("drills %d, missed %d, undrilled %d, datasets %d, listed misses %d", r.DrillTotal, r.DrillMisses, r.Undrilled, len(r.Drills), len(r.MissedDrills))
	}
	byName := map[string]*drillDataset{}
	for _, d := range r.Drills {
		byName[d.Dataset] = d
	}
	pay := byName["payroll-ledger-exports-eu-central-frankfurt-quarterly"]
	if pay == nil || pay.Drills != 4 || pay.Misses != 2 || pay.Last == nil || !strings.HasPrefix(pay.Last.Verdict(), "MISSED: restored, but in 4h12m9s") {
		t.Errorf("payroll drills %+v", pay)
	}
	if fin := byName["finance-general-ledger"]; fin == nil || fin.Last != nil || fin.Drills != 0 {
		t.Errorf("finance, transferred but never drilled: %+v", fin)
	}
	if got := r.MissedDrills[0]; got.Result != "failed: integrity check" || secondsWords(got.Restore) != "3.0 s" || secondsWords(got.RTO) != "4h" {
		t.Errorf("first missed drill %+v", got)
	}
	var htm, md bytes.Buffer
	if err := r.HTML(&htm); err != nil {
		t.Fatal(err)
	}
	if err := r.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	hr := archiveID("hr", 1)
	wantAll(t, "Markdown", md.String(), "## Restore drills", "6 restore drills of 4 datasets in the pack, 2 missed",
		"Dataset finance-general-ledger had no drill in the pack.",
		"| hr | 2026-01-01 00:02:10Z | 130 | "+hr+" | 42.2 s | 1h | ok, within the RTO | 1 | 0 |",
		"| crm | 2026-01-01 00:02:12Z | 132 | "+archiveID("crm", 1)+" | not recorded | not recorded | ok, but the restore time is not recorded | 1 | 0 |",
		"| finance-general-ledger | no drill in this pack | — | — | — | — | — | 0 | 0 |",
		"### Missed drills", "| 4h12m10s | 4h | MISSED: restored, but in 4h12m9s, over the RTO of 4h0m0s |",
		"| Restore drills (missed) | 6 (2) |", "| Datasets without a drill | 1 |")
	wantAll(t, "HTML", htm.String(), "<h2>Restore drills</h2>", `<td colspan="6" class="warn">No drill in this pack.</td>`, "<h3>Missed drills</h3>",
		"<code>"+hr+"</code>", "ok, within the RTO")

	// One by one: what each drill entry's details make of it.
	for _, tc := range []struct {
		name    string
		details map[string]string
		verdict string
		missed  bool
	}{
		{"in time", map[string]string{"result": "ok", "restore_seconds": "59.95", "rto_seconds": "60"}, "ok, within the RTO", false},
		{"ok, but over the RTO it records", map[string]string{"result": "ok", "restore_seconds": "61", "rto_seconds": "60"}, "MISSED: restore time over the RTO", true},
		{"earlier format, no RTO", map[string]string{"result": "ok", "restore_seconds": "61"}, "ok; RTO not recorded", false},
		{"failed", map[string]string{"result": "failed: restore error", "restore_seconds": "1", "rto_seconds": "60"}, "MISSED: failed: restore error", true},
		{"no result", map[string]string{"restore_seconds": "1"}, "MISSED: no result recorded", true},
		{"unreadable time", map[string]string{"result": "ok", "restore_seconds": "soon", "rto_seconds": "60"}, "ok, but the restore time is unreadable", false},
	} {
		f := audittest.NewLog(t, "test", 1)
		d := map[string]string{"archive": archiveID("hr", 1), "dataset": "hr"}
		maps.Copy(d, tc.details)
		f.Add(t, ledger.Entry{Type: ledger.TypeDrill, Actor: ledger.Actor{Identity: "custos://test/agent/a?region=DE", Role: "agent", Region: "DE"},
			Outcome: ledger.OutcomeOK, Details: d})
		r := &Report{}
		b := newReportBuilder(r)
		for _, raw := range f.Entries {
			e, _ := ledger.ParseEntry(raw)
			_ = b.entry(e)
		}
		b.finish()
		if len(r.Drills) != 1 || r.Drills[0].Last == nil {
			t.Fatalf("%s: drills %+v", tc.name, r.Drills)
		}
		if l := r.Drills[0].Last; l.Verdict() != tc.verdict || l.Missed() != tc.missed || (r.DrillMisses == 1) != tc.missed {
			t.Errorf("%s: verdict %q, missed %v (%d); want %q, %v", tc.name, l.Verdict(), l.Missed(), r.DrillMisses, tc.verdict, tc.missed)
		}
	}
	if got := secondsWords(parseDrillFigure("soon")); got != `unreadable ("soon")` {
		t.Errorf("an unreadable figure reads %q", got)
	}
	for s, want := range map[string]string{"14400": "4h", "5400": "1h30m", "901.117": "15m1s", "120": "2m", "42.25": "42.2 s", "": "not recorded"} {
		if got := secondsWords(parseDrillFigure(s)); got != want {
			t.Errorf("%q seconds read %q, want %q", s, got, want)
		}
	}
}

// browserTools finds Debian's chromium and pdftotext (poppler-utils), which
// make deps installs. Without them the browser test is skipped, unless
// CUSTOS_REQUIRE_SOFTHSM is set, as make test sets it: then it fails.
func browserTools(t *testing.T) (chromium, pdftotext string) {
	t.Helper()
	find := func(name, pkg string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			msg := fmt.Sprintf("%s not found (apt-get install -y %s, as make deps does)", name, pkg)
			if os.Getenv("CUSTOS_REQUIRE_SOFTHSM") != "" {
				t.Fatal(msg + " and CUSTOS_REQUIRE_SOFTHSM is set")
			}
			t.Skip(msg)
		}
		return p
	}
	return find("chromium", "chromium"), find("pdftotext", "poppler-utils")
}

// headless runs chromium headless, root-safe and offline (no sandbox, no
// GPU, nothing fetched in the background) in a new profile under dir, for
// at most limit, and returns what it printed on stdout. Every process it
// started is killed before headless returns.
func headless(t *testing.T, chromium, dir string, limit time.Duration, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(dir, "profile")}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, killed whole
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Anything it left running, and wait (a little) until it is gone.
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			left := browserLeftovers(cmd.Process.Pid, dir)
			if len(left) == 0 {
				return
			}
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		t.Errorf("chromium processes %v still running", browserLeftovers(cmd.Process.Pid, dir))
	}()
	if err := cmd.Wait(); err != nil {
		e := stderr.Bytes()
		t.Fatalf("chromium (at most %v): %v\n…%s", limit, err, e[max(len(e)-2000, 0):])
	}
	return stdout.Bytes()
}

// browserLeftovers lists the live processes a headless chromium started:
// those of its process group, and its crash handlers, which leave the group
// but name its directory (dir) on their command line.
func browserLeftovers(group int, dir string) []int {
	procs, _ := os.ReadDir("/proc")
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		i := bytes.LastIndexByte(stat, ')')
		if err != nil || i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:])) // state, ppid, pgrp, …
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if f[2] == strconv.Itoa(group) || bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// layoutProbe measures the report as laid out in the browser window and
// says what it found in the page's title, which --dump-dom prints: every
// table must fit its container and the window, no cell may overflow, and
// every time must be on one line. Then, for the screenshot, it hides on
// screen what comes before the widest tables, so that they are at the top:
// the ceremonies (their first rows), the transfers and the drills.
const layoutProbe = `<script>
(function () {
  var bad = [], tables = 0, times = 0, vw = document.documentElement.clientWidth;
  function head(t) { var th = t.querySelector("th"); return th ? th.textContent : "?"; }
  document.querySelectorAll("table").forEach(function (t) {
    tables++;
    var box = t.getBoundingClientRect(), room = t.parentElement.clientWidth;
    if (t.scrollWidth > room + 1 || box.right > vw + 0.5 || box.left < -0.5) {
      bad.push("table " + tables + " (" + head(t) + "…) is " + Math.round(box.width) + " px wide in " + room + " px");
    }
    t.querySelectorAll("th, td").forEach(function (c) {
      if (c.scrollWidth > c.clientWidth + 1) bad.push("a cell of table " + tables + " (" + head(t) + "…) overflows: " + c.textContent.slice(0, 80));
    });
  });
  var time = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/;
  document.querySelectorAll("td").forEach(function (td) {
    if (!time.test(td.textContent.trim())) return;
    times++;
    var r = document.createRange(), lines = {};
    r.selectNodeContents(td);
    Array.prototype.forEach.call(r.getClientRects(), function (q) { lines[Math.round(q.top)] = true; });
    var n = Object.keys(lines).length;
    if (n !== 1) bad.push("time " + td.textContent + " on " + n + " lines");
  });
  if (document.documentElement.scrollWidth > vw) bad.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " px in " + vw);
  document.title = JSON.stringify({tables: tables, times: times, width: vw, bad: bad.slice(0, 40)});

  // Hidden on screen only: the print keeps the whole report.
  var style = document.createElement("style");
  style.textContent = "@media screen { .shot-hidden { display: none !important; } }";
  document.head.appendChild(style);
  var h2 = Array.prototype.filter.call(document.querySelectorAll("h2"), function (h) { return h.textContent.indexOf("Ceremonies") === 0; })[0];
  for (var e = h2 && h2.previousElementSibling; e; e = e.previousElementSibling) e.classList.add("shot-hidden");
  var rows = h2 ? h2.nextElementSibling.querySelectorAll("tbody tr") : [];
  for (var i = 4; i < rows.length; i++) rows[i].classList.add("shot-hidden");
})();
</script>`

// TestReportFitsWindowAndA4 renders a busy report in a real browser: in a
// 1280 px window every table fits and every time is on one line, and
// printed to PDF it is A4 with every word inside the page's margins, the
// last column's header there and every time whole on its line.
// $CUSTOS_REPORT_SHOTS names a directory to keep the screenshot and PDF in.
func TestReportFitsWindowAndA4(t *testing.T) {
	chromium, pdftotext := browserTools(t)
	var page bytes.Buffer
	if err := busyReport(t).HTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "</body>") {
		t.Fatal("the report has no </body>")
	}
	dir := t.TempDir()
	probe := filepath.Join(dir, "report.html")
	if err := os.WriteFile(probe, []byte(strings.Replace(page.String(), "</body>", layoutProbe+"\n</body>", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	shot, pdf := filepath.Join(dir, "report.png"), filepath.Join(dir, "report.pdf")
	if keep := os.Getenv("CUSTOS_REPORT_SHOTS"); keep != "" {
		shot, pdf = filepath.Join(keep, "report.png"), filepath.Join(keep, "report.pdf")
	}
	// One browser start for all three: the DOM after the probe ran, the
	// screenshot and the print.
	start := time.Now()
	dom := headless(t, chromium, dir, 90*time.Second, "--window-size=1280,1600", "--screenshot="+shot,
		"--print-to-pdf="+pdf, "--no-pdf-header-footer", "--dump-dom", "file://"+probe)
	t.Logf("chromium: %v", time.Since(start).Round(time.Millisecond))

	// (a) The 1280 px window, as the probe measured it.
	m := regexp.MustCompile(`<title>([^<]*)</title>`).FindSubmatch(dom)
	var got struct {
		Tables, Times, Width int
		Bad                  []string
	}
	if m == nil || json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &got) != nil {
		t.Fatalf("the layout probe did not report (title %q)", m)
	}
	if got.Tables < 15 || got.Times < 60 || got.Width != 1280 {
		t.Fatalf("the probe measured %d tables and %d times in a %d px window; the report has more", got.Tables, got.Times, got.Width)
	}
	for _, b := range got.Bad {
		t.Errorf("at 1280 px: %s", b)
	}
	checkScreenshot(t, shot)

	// (b) Printed.
	checkPDF(t, pdftotext, pdf)
}

// checkScreenshot checks the screenshot is of the 1280 px window and that
// nothing is drawn in its right margin: no table spills past the body.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != 1280 {
		t.Fatalf("screenshot %d px wide, want 1280", b.Dx())
	}
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Max.X - 32; x < b.Max.X; x++ { // the body's margin is 64 px
			if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				ink++
			}
		}
	}
	if ink > 0 {
		t.Errorf("the screenshot has %d drawn pixels in its right margin: something is wider than the page", ink)
	}
}

// checkPDF checks the printed report: A4 pages, every word inside the
// page's margins (a column cut off at the page's edge lands outside them),
// the last headers of the widest tables printed, and every time whole, its
// date and its time on one line.
func checkPDF(t *testing.T, pdftotext, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pdftotext, "-bbox", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	pageRE := regexp.MustCompile(`<page width="([0-9.]+)" height="([0-9.]+)">`)
	wordRE := regexp.MustCompile(`<word xMin="([0-9.]+)" yMin="([0-9.]+)" xMax="([0-9.]+)" yMax="[0-9.]+">([^<]*)</word>`)
	type word struct {
		x0, y, x1 float64
		text      string
		page      int
	}
	var words []word
	pages := 0
	for _, l := range strings.Split(string(out), "\n") {
		if m := pageRE.FindStringSubmatch(l); m != nil {
			pages++
			w, h := atof(m[1]), atof(m[2])
			if math.Abs(w-595.28) > 2 || math.Abs(h-841.89) > 2 {
				t.Errorf("page %d is %.0f × %.0f pt, not A4 (595 × 842)", pages, w, h)
			}
			continue
		}
		if m := wordRE.FindStringSubmatch(l); m != nil {
			words = append(words, word{atof(m[1]), atof(m[2]), atof(m[3]), html.UnescapeString(m[4]), pages})
		}
	}
	if pages < 5 || len(words) < 2000 {
		t.Fatalf("the PDF has %d pages and %d words; the report is longer", pages, len(words))
	}
	const margin = 10 * 72 / 25.4 // @page's side margins, 10 mm
	outside := 0
	for _, w := range words {
		if w.x0 < margin-1 || w.x1 > 595.28-margin+1 {
			if outside++; outside <= 10 {
				t.Errorf("page %d: %q at x %.1f–%.1f pt is outside the margins (%.1f–%.1f)", w.page, w.text, w.x0, w.x1, margin, 595.28-margin)
			}
		}
	}
	if outside > 10 {
		t.Errorf("… %d words outside the margins in all", outside)
	}
	text := make([]string, len(words))
	for i, w := range words {
		text[i] = w.text
	}
	all := " " + strings.Join(text, " ") + " "
	for _, h := range []string{"closed at what it did", "policy other", "drills missed", "No drill in this pack."} {
		if !strings.Contains(all, " "+h+" ") {
			t.Errorf("the PDF lacks %q", h)
		}
	}
	// The report's times are "2026-01-01 00:02:12Z": two words, which
	// must be on one line, the date not broken at its hyphens. (Times in
	// RFC 3339 inside free text, and the chart's dates, are not of that
	// form.)
	date, clock := regexp.MustCompile(`^\d{4}-\d\d-\d\d$`), regexp.MustCompile(`^\d\d:\d\d:\d\dZ$`)
	datePart, dateRest := regexp.MustCompile(`^\d{4}-(\d\d-)?$`), regexp.MustCompile(`^(\d\d-)?\d\d$`)
	whole := 0
	for i := 0; i+1 < len(words); i++ {
		w, next := words[i], words[i+1]
		switch {
		case datePart.MatchString(w.text) && dateRest.MatchString(next.text):
			t.Errorf("page %d: a time broken across lines: %q, %q", w.page, w.text, next.text)
		case date.MatchString(w.text) && clock.MatchString(next.text):
			if math.Abs(next.y-w.y) < 1 {
				whole++
			} else {
				t.Errorf("page %d: %s and %s on two lines", w.page, w.text, next.text)
			}
		}
	}
	if whole < 60 {
		t.Errorf("the PDF has %d times on one line; the report has more", whole)
	}
}

// wantAll fails the test for each of wants that out lacks.
func wantAll(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
