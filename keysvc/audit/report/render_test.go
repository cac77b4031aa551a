package report

// The report escapes what the log holds, in HTML and in Markdown.

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestReportEscapes(t *testing.T) {
	r := &Report{Cluster: "c<1>", Pack: `p"&<b>`, Verified: false, Verification: "<i>nope</i>",
		Chart: barChart{Title: "T<", Labels: []string{"2026-01-01", "2026-01-02"}, Series: []string{"<script>alert(1)</script>"}, Values: [][]int{{3}, {5}}}}
	var htm, md bytes.Buffer
	if err := r.HTML(&htm); err != nil {
		t.Fatal(err)
	}
	if err := r.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<script>", "<i>", "<b>", "c<1>"} {
		if strings.Contains(htm.String(), s) {
			t.Errorf("the HTML report holds %q unescaped", s)
		}
	}
	wantAll(t, "HTML", htm.String(), "&lt;script&gt;", "<svg", "<rect")
	i := strings.Index(md.String(), "data:image/svg+xml;base64,")
	if i < 0 {
		t.Fatal("no chart in the Markdown report")
	}
	b64 := md.String()[i+len("data:image/svg+xml;base64,"):]
	svg, err := base64.StdEncoding.DecodeString(b64[:strings.IndexByte(b64, ')')])
	if err != nil || strings.Contains(string(svg), "<script>") || !strings.Contains(string(svg), "&lt;script&gt;") {
		t.Errorf("the Markdown report's chart: %v\n%s", err, svg)
	}
	if strings.Contains(md.String(), "<i>") {
		t.Error("the Markdown report holds HTML unescaped")
	}
}
