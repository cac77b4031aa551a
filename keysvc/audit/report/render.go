package report

// Rendering a Report: one self-contained HTML page (html/template,
// inline CSS, the chart as hand-written inline SVG, no script, nothing
// fetched) or Markdown (the chart as an SVG data: image plus its table).

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// chartColors are the Okabe–Ito colours, distinguishable with colour blindness.
var chartColors = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"}

// svgChart is a barChart laid out for drawing.
type svgChart struct {
	Title             string
	Width, Height     int
	PlotX, PlotY      float64
	PlotW, PlotH      float64
	Bottom            float64 // PlotY + PlotH
	Bars              []svgRect
	YTicks            []svgTick
	XLabels           []svgTick
	Legend            []svgLegend
	Empty             bool
	AxisLabel, XLabel string
}

type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Title      string
}

type svgTick struct {
	At   float64
	Text string
}

type svgLegend struct {
	Y     float64
	Fill  string
	Label string // shortened to fit the legend
	Full  string
}

// maxLegend is the longest label the legend's width holds.
const maxLegend = 24

// layout places c's bars in a width × height picture.
func (c barChart) layout(width, height int) svgChart {
	s := svgChart{Title: c.Title, Width: width, Height: height, PlotX: 56, PlotY: 30, AxisLabel: "unwraps", XLabel: "day (UTC)"}
	legendW := 0.0
	if len(c.Series) > 0 {
		legendW = 170
	}
	s.PlotW = float64(width) - s.PlotX - 16 - legendW
	s.PlotH = float64(height) - s.PlotY - 56
	s.Bottom = s.PlotY + s.PlotH
	if strings.Contains(c.Title, "week") {
		s.XLabel = "week starting (UTC)"
	}
	top := 0
	for _, row := range c.Values {
		sum := 0
		for _, v := range row {
			sum += max(v, 0)
		}
		top = max(top, sum)
	}
	if len(c.Labels) == 0 || top == 0 {
		s.Empty = true
		return s
	}
	step := niceStep(top)
	ymax := int(math.Ceil(float64(top)/float64(step))) * step
	for v := 0; v <= ymax; v += step {
		s.YTicks = append(s.YTicks, svgTick{At: s.Bottom - float64(v)/float64(ymax)*s.PlotH, Text: strconv.Itoa(v)})
	}
	slot := s.PlotW / float64(len(c.Labels))
	barW := math.Min(math.Max(slot*0.8, 1), 48)
	every := (len(c.Labels) + 7) / 8 // at most about 8 labels on the x axis
	for i, label := range c.Labels {
		x := s.PlotX + float64(i)*slot + (slot-barW)/2
		y := s.Bottom
		for j, v := range c.Values[i] {
			if v <= 0 {
				continue
			}
			h := float64(v) / float64(ymax) * s.PlotH
			y -= h
			s.Bars = append(s.Bars, svgRect{X: x, Y: y, W: barW, H: h, Fill: chartColors[j%len(chartColors)],
				Title: fmt.Sprintf("%s, KEK %s: %d", label, c.Series[j], v)})
		}
		if i%every == 0 {
			s.XLabels = append(s.XLabels, svgTick{At: s.PlotX + float64(i)*slot + slot/2, Text: label})
		}
	}
	for j, name := range c.Series {
		label := name
		if r := []rune(name); len(r) > maxLegend {
			label = string(r[:maxLegend-1]) + "…"
		}
		s.Legend = append(s.Legend, svgLegend{Y: s.PlotY + 4 + float64(j)*18, Fill: chartColors[j%len(chartColors)], Label: label, Full: name})
	}
	return s
}

// niceStep is a round tick step giving at most about five ticks up to top.
func niceStep(top int) int {
	raw := float64(top) / 5
	p := math.Pow(10, math.Floor(math.Log10(math.Max(raw, 1))))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return max(int(m*p), 1)
		}
	}
	return max(int(10*p), 1)
}

// f formats a coordinate.
func f(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

var svgTemplate = template.Must(template.New("svg").Funcs(template.FuncMap{"f": f, "add": func(a, b float64) float64 { return a + b }}).Parse(
	`<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
<title>{{.Title}}</title>
<rect x="0" y="0" width="{{.Width}}" height="{{.Height}}" fill="#ffffff"/>
<text x="{{f .PlotX}}" y="18" font-family="sans-serif" font-size="14" font-weight="bold" fill="#222222">{{.Title}}</text>
{{- if .Empty}}
<text x="{{f (add .PlotX 10)}}" y="{{f (add .PlotY 40)}}" font-family="sans-serif" font-size="13" fill="#555555">No unwraps recorded in this pack.</text>
{{- else}}
{{- range .YTicks}}
<line x1="{{f $.PlotX}}" y1="{{f .At}}" x2="{{f (add $.PlotX $.PlotW)}}" y2="{{f .At}}" stroke="#dddddd" stroke-width="1"/>
<text x="{{f (add $.PlotX -6)}}" y="{{f (add .At 4)}}" text-anchor="end" font-family="sans-serif" font-size="11" fill="#444444">{{.Text}}</text>
{{- end}}
{{- range .Bars}}
<rect x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="{{f .H}}" fill="{{.Fill}}"><title>{{.Title}}</title></rect>
{{- end}}
{{- range .XLabels}}
<text x="{{f .At}}" y="{{f (add $.Bottom 16)}}" text-anchor="middle" font-family="sans-serif" font-size="11" fill="#444444">{{.Text}}</text>
{{- end}}
{{- range .Legend}}
<rect x="{{f (add $.PlotX (add $.PlotW 16))}}" y="{{f .Y}}" width="12" height="12" fill="{{.Fill}}"/>
<text x="{{f (add $.PlotX (add $.PlotW 34))}}" y="{{f (add .Y 10)}}" font-family="sans-serif" font-size="12" fill="#222222"><title>{{.Full}}</title>{{.Label}}</text>
{{- end}}
{{- end}}
<line x1="{{f .PlotX}}" y1="{{f .Bottom}}" x2="{{f (add .PlotX .PlotW)}}" y2="{{f .Bottom}}" stroke="#444444" stroke-width="1"/>
<line x1="{{f .PlotX}}" y1="{{f .PlotY}}" x2="{{f .PlotX}}" y2="{{f .Bottom}}" stroke="#444444" stroke-width="1"/>
<text x="{{f (add .PlotX (add .PlotW -2))}}" y="{{f (add .Bottom 36)}}" text-anchor="end" font-family="sans-serif" font-size="11" fill="#444444">{{.XLabel}}</text>
<text x="14" y="{{f (add .PlotY 40)}}" font-family="sans-serif" font-size="11" fill="#444444" transform="rotate(-90 14 {{f (add .PlotY 40)}})">{{.AxisLabel}}</text>
</svg>`))

// svg draws the chart as standalone SVG markup, every text escaped.
func (c barChart) svg() (string, error) {
	var b bytes.Buffer
	if err := svgTemplate.Execute(&b, c.layout(820, 300)); err != nil {
		return "", err
	}
	return b.String(), nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func fmtEntry(i uint64) string {
	if i == 0 {
		return "—"
	}
	return strconv.FormatUint(i, 10)
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"time":  fmtTime,
	"entry": fmtEntry,
	"join":  strings.Join,
	"list": func(xs []uint64) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = strconv.FormatUint(x, 10)
		}
		return strings.Join(s, ", ")
	},
	"dash": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
	"releasers":  releasersWords,
	"flagAdvice": func() string { return flagAdvice },
	"seconds":    secondsWords,
	"sub":        func(a, b int) int { return a - b },
}).Parse(reportHTML))

// HTML writes r as one self-contained HTML page.
func (r *Report) HTML(w io.Writer) error {
	chart, err := r.Chart.svg()
	if err != nil {
		return err
	}
	return htmlReport.Execute(w, struct {
		*Report
		ChartSVG template.HTML // built by svgTemplate, which escaped every text in it
	}{r, template.HTML(chart)})
}

// md escapes text for a Markdown table cell or paragraph.
func md(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '|', '#', '!', '~':
			b.WriteByte('\\')
			b.WriteRune(c)
		case '\n', '\r':
			b.WriteByte(' ')
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// mdTable writes a Markdown table; cells are escaped.
func mdTable(w io.Writer, head []string, rows [][]string) {
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = md(c)
			if cells[i] == "" {
				cells[i] = "—"
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
}

// Markdown writes r as Markdown.
func (r *Report) Markdown(w io.Writer) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Key custody report: cluster %s\n\n", md(r.Cluster))
	if r.Verified {
		p("> **Verified.** %s\n\n", md(r.Verification))
	} else {
		p("> **NOT VERIFIED.** %s Nothing in this report may be relied on until the pack verifies.\n\n", md(r.Verification))
	}
	p("## Scope\n\n")
	mdTable(&b, []string{"", ""}, [][]string{
		{"Evidence pack", r.Pack},
		{"Pack SHA-256", r.PackSHA256},
		{"Log origin", r.Origin},
		{"Entries", fmt.Sprintf("%d to %d (exclusive): %d entries", r.From, r.To, r.Entries)},
		{"Time span", fmtTime(r.FirstTime) + " to " + fmtTime(r.LastTime)},
		{"Checkpoint", fmt.Sprintf("size %d, root %s, signed by %s", r.CheckpointSize, r.CheckpointRoot, r.CheckpointSigner)},
		{"Pack created", fmtTime(r.Created)},
		{"Report generated", fmtTime(r.Generated)},
	})
	p("## Summary\n\n")
	mdTable(&b, []string{"", ""}, [][]string{
		{"KEKs", strconv.Itoa(len(r.KEKs))},
		{"Unwraps served", strconv.Itoa(r.UnwrapTotal)},
		{"Denied or failed operations", strconv.Itoa(r.DenialTotal)},
		{"Ceremonies", strconv.Itoa(len(r.Ceremonies))},
		{"Cross-border transfers", strconv.Itoa(len(r.Transfers) + r.TransferMore)},
		{"Destroyed KEK versions", strconv.Itoa(len(r.Destroyed))},
		{"Restore drills (missed)", fmt.Sprintf("%d (%d)", r.DrillTotal, r.DrillMisses)},
		{"Datasets without a drill", strconv.Itoa(r.Undrilled)},
		{"KEK activations", strconv.Itoa(r.ActivationTotal)},
		{"Flagged activations and share releases", strconv.Itoa(r.FlagTotal)},
	})
	chart, err := r.Chart.svg()
	if err != nil {
		return err
	}
	p("## %s\n\n", md(r.Chart.Title))
	p("![%s](data:image/svg+xml;base64,%s)\n\n", md(r.Chart.Title), base64.StdEncoding.EncodeToString([]byte(chart)))
	if len(r.Chart.Labels) > 0 {
		var rows [][]string
		for i, l := range r.Chart.Labels {
			row := []string{l}
			for _, v := range r.Chart.Values[i] {
				row = append(row, strconv.Itoa(v))
			}
			rows = append(rows, row)
		}
		mdTable(&b, append([]string{"day"}, r.Chart.Series...), rows)
	}

	p("## KEKs and their lifecycles\n\n")
	if len(r.KEKs) == 0 {
		p("None recorded.\n\n")
	}
	for _, k := range r.KEKs {
		p("### KEK %s\n\n", md(k.ID))
		if k.LegalHold != "" {
			p("**Under legal hold** at the end of the pack: %s\n\n", md(k.LegalHold))
		}
		var rows [][]string
		for _, v := range k.Versions {
			rows = append(rows, []string{strconv.FormatUint(uint64(v.Version), 10), v.State, fmtEntry(v.Created), v.Threshold, v.Holders, v.Escrow, fmtEntry(v.Destroyed), uintList(v.Recovered)})
		}
		mdTable(&b, []string{"version", "state", "created (entry)", "threshold", "share holders", "escrow", "destroyed (entry)", "recovered (entries)"}, rows)
		rows = nil
		for _, e := range k.Events {
			rows = append(rows, []string{strconv.FormatUint(e.Index, 10), fmtTime(e.Time), e.What, e.Version, e.Detail, e.Approvers, e.Proposal})
		}
		mdTable(&b, []string{"entry", "time", "event", "version", "detail", "approvers", "ceremony"}, rows)
	}

	p("## Unwraps per identity, region and KEK\n\n")
	var rows [][]string
	for _, u := range r.Unwraps {
		rows = append(rows, []string{u.KEK, u.Identity, u.Region, strconv.Itoa(u.Count), strconv.Itoa(u.Withdrawn), fmtTime(u.First), fmtTime(u.Last)})
	}
	if len(rows) == 0 {
		p("None recorded.\n\n")
	} else {
		mdTable(&b, []string{"KEK", "identity", "region", "unwraps", "withdrawn", "first", "last"}, rows)
	}
	p("### Key operations per KEK\n\n")
	rows = nil
	for _, o := range r.KeyOps {
		rows = append(rows, []string{o.KEK, strconv.Itoa(o.Wrap), strconv.Itoa(o.Unwrap), strconv.Itoa(o.DataKey), strconv.Itoa(o.Rewrap), strconv.Itoa(o.Activate), strconv.Itoa(o.Release), strconv.Itoa(o.Denied)})
	}
	if len(rows) == 0 {
		p("None recorded.\n\n")
	} else {
		mdTable(&b, []string{"KEK", "wrap", "unwrap", "datakey", "rewrap", "activations", "share releases", "denied"}, rows)
	}

	r.writeReleasesMarkdown(&b)

	p("## Denials\n\n")
	rows = nil
	for _, d := range r.Denials {
		rows = append(rows, []string{d.Type, d.Code, strconv.Itoa(d.Count), strconv.FormatUint(d.Last, 10)})
	}
	if len(rows) == 0 {
		p("None recorded.\n\n")
	} else {
		mdTable(&b, []string{"type", "code", "count", "last entry"}, rows)
		rows = nil
		for _, d := range r.DenialList {
			rows = append(rows, []string{strconv.FormatUint(d.Index, 10), fmtTime(d.Time), d.Type, d.Actor, d.KEK, d.Why})
		}
		p("The first %d denied entries:\n\n", len(rows))
		mdTable(&b, []string{"entry", "time", "type", "actor", "KEK", "reason"}, rows)
	}

	p("## Ceremonies and their approvers\n\n")
	rows = nil
	for _, c := range r.Ceremonies {
		status := c.Status
		if c.Why != "" {
			status += ": " + c.Why
		}
		rows = append(rows, []string{c.ID, c.Operation, c.Proposer, strings.Join(c.Approvers, ", "), status, fmtEntry(c.Proposed), fmtEntry(c.Closed), fmtTime(c.ClosedAt), c.Description})
	}
	if len(rows) == 0 {
		p("None recorded.\n\n")
	} else {
		mdTable(&b, []string{"ceremony", "operation", "proposer", "approvers", "status", "proposed (entry)", "closed (entry)", "closed at", "what it did"}, rows)
	}

	p("## Cross-border transfers\n\n")
	rows = nil
	for _, t := range r.Transfers {
		rows = append(rows, []string{strconv.FormatUint(t.Index, 10), fmtTime(t.Time), t.Actor, t.Outcome, t.Dataset, t.Checksum, t.Where, t.Why, t.Policy, t.Other})
	}
	if len(rows) == 0 {
		p("None recorded.\n\n")
	} else {
		mdTable(&b, []string{"entry", "time", "agent", "outcome", "dataset", "checksum", "destination", "why", "policy", "other"}, rows)
		if r.TransferMore > 0 {
			p("… and %d more.\n\n", r.TransferMore)
		}
	}

	r.writeDrillsMarkdown(&b)

	p("## Destroyed KEK versions\n\n")
	if len(r.Destroyed) == 0 {
		p("None recorded.\n\n")
	}
	for _, d := range r.Destroyed {
		p("### %s version %d\n\n", md(d.KEK), d.Version)
		cert := "not in the pack (only the log entries below)"
		if d.Certificate {
			cert = "in the pack"
			if d.Complete {
				cert += ", complete: every holder attested"
			} else {
				cert += ", NOT complete"
			}
		}
		mdTable(&b, []string{"", ""}, [][]string{
			{"Destroyed in entry", fmtEntry(d.Entry)},
			{"Ceremony", d.Ceremony},
			{"Approved by", d.Approvers},
			{"Public key", d.PublicKey},
			{"Certificate", cert},
		})
		rows = nil
		for _, h := range d.Holders {
			st := "NOT attested"
			if h.Attested {
				st = "attested: its HSM key is destroyed"
			}
			rows = append(rows, []string{h.Node, st, fmtEntry(h.Entry)})
		}
		mdTable(&b, []string{"share holder", "destruction", "entry"}, rows)
		if d.Escrow != "" {
			p("**Escrow caveat:** %s.\n\n", md(d.Escrow))
		}
	}

	p("## Officers\n\n")
	rows = nil
	for _, o := range r.Officers {
		rows = append(rows, []string{o.ID, o.Fingerprint})
	}
	if len(rows) == 0 {
		p("None in the pack.\n\n")
	} else {
		mdTable(&b, []string{"officer", "key fingerprint"}, rows)
	}

	p("## Entries by type\n\n")
	rows = nil
	for _, t := range r.ByType {
		rows = append(rows, []string{t.Name, strconv.Itoa(t.Count)})
	}
	mdTable(&b, []string{"type", "entries"}, rows)
	p("---\n\nReproduce the verification: `custos audit verify %s --trust TRUSTFILE`. What a verified pack proves, and what it cannot, is in the auditor's guide (docs/auditors.md).\n", md(r.Pack))
	_, err = w.Write(b.Bytes())
	return err
}

func uintList(xs []uint64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(s, ", ")
}

// writeDrillsMarkdown writes the restore drills: per dataset, its last
// drill and its misses; then the missed drills.
func (r *Report) writeDrillsMarkdown(w io.Writer) {
	fmt.Fprintf(w, "## Restore drills\n\n")
	if len(r.Drills) == 0 {
		fmt.Fprintf(w, "None recorded: the pack has no backup entry (transfer, prune or drill) naming a dataset.\n\n")
		return
	}
	fmt.Fprintf(w, "%s\n\n", md(r.DrillWords()))
	var rows [][]string
	for _, d := range r.Drills {
		row := []string{d.Dataset}
		if l := d.Last; l != nil {
			row = append(row, fmtTime(l.Time), strconv.FormatUint(l.Index, 10), l.Archive, secondsWords(l.Restore), secondsWords(l.RTO), l.Verdict())
		} else {
			row = append(row, "no drill in this pack", "", "", "", "", "")
		}
		rows = append(rows, append(row, strconv.Itoa(d.Drills), strconv.Itoa(d.Misses)))
	}
	mdTable(w, []string{"dataset", "last drill", "entry", "archive", "restore time", "RTO", "result", "drills", "missed"}, rows)
	if len(r.MissedDrills) == 0 {
		return
	}
	fmt.Fprintf(w, "### Missed drills\n\n")
	rows = nil
	for _, d := range r.MissedDrills {
		rows = append(rows, []string{strconv.FormatUint(d.Index, 10), fmtTime(d.Time), d.Dataset, d.Archive, d.Agent, secondsWords(d.Restore), secondsWords(d.RTO), d.Verdict()})
	}
	mdTable(w, []string{"entry", "time", "dataset", "archive", "agent", "restore time", "RTO", "result"}, rows)
	if more := r.DrillMisses - len(r.MissedDrills); more > 0 {
		fmt.Fprintf(w, "… and %d more.\n\n", more)
	}
}

// writeReleasesMarkdown writes the activations, the share releases that
// answered them, and what is flagged.
func (r *Report) writeReleasesMarkdown(w io.Writer) {
	fmt.Fprintf(w, "## Activations and share releases\n\n")
	if r.FlagTotal > 0 {
		fmt.Fprintf(w, "**%d flagged.** %s\n\n", r.FlagTotal, md(flagAdvice))
		var rows [][]string
		for _, f := range r.ReleaseFlags {
			rows = append(rows, []string{strconv.FormatUint(f.Index, 10), fmtTime(f.Time), f.Type, f.Node, f.KEK, f.To, f.For, f.Code, f.Why})
		}
		mdTable(w, []string{"entry", "time", "type", "node", "KEK", "to", "for", "finding", "what it means"}, rows)
		if more := r.FlagTotal - len(r.ReleaseFlags); more > 0 {
			fmt.Fprintf(w, "… and %d more.\n\n", more)
		}
	} else {
		fmt.Fprintf(w, "Nothing flagged: every share release answers an activation logged before it, with the client's signed request.\n\n")
	}
	if r.ActivationTotal == 0 {
		fmt.Fprintf(w, "No activations recorded.\n\n")
		return
	}
	var rows [][]string
	for _, a := range r.Activations {
		rows = append(rows, []string{strconv.FormatUint(a.Index, 10), fmtTime(a.Time), a.Client, a.KEK, a.Node, releasersWords(a)})
	}
	fmt.Fprintf(w, "The first %d of %d activations:\n\n", len(rows), r.ActivationTotal)
	mdTable(w, []string{"activation (entry)", "time", "client", "KEK", "serving node", "shares released by"}, rows)
}

// secondsWords is a drill's recorded time: "42.3 s" under a minute, else a
// duration ("15m1s", "4h"); "not recorded" if the entry has none.
func secondsWords(f drillFigure) string {
	switch {
	case f.Raw == "":
		return "not recorded"
	case !f.OK:
		return fmt.Sprintf("unreadable (%q)", f.Raw)
	case f.Seconds < 60:
		return strconv.FormatFloat(f.Seconds, 'f', 1, 64) + " s"
	}
	return shortDuration(time.Duration(f.Seconds * float64(time.Second)))
}

// shortDuration is d to the second, without trailing zero units: "4h",
// "1h30m", "15m1s".
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// DrillWords sums up the restore drills: how many, how many missed, and
// which datasets had none.
func (r *Report) DrillWords() string {
	var none []string
	for _, d := range r.Drills {
		if d.Last == nil {
			none = append(none, d.Dataset)
		}
	}
	s := fmt.Sprintf("%d restore drills of %d datasets in the pack, %d missed (the drill failed, or its restore time was over the RTO).",
		r.DrillTotal, len(r.Drills), r.DrillMisses)
	switch len(none) {
	case 0:
		s += " Every dataset had a drill in the pack."
	case 1:
		s += " Dataset " + none[0] + " had no drill in the pack."
	default:
		s += fmt.Sprintf(" %d datasets had no drill in the pack: %s.", len(none), strings.Join(none, ", "))
	}
	return s + " The datasets are those the pack's backup entries (transfers, prunes, drills) name. " +
		"Each drill is the attestation of the agent that ran it, bound to its certificate: the log proves the agent said so, not that the restore took place."
}

// flagAdvice says what to do about flagged activations and releases.
const flagAdvice = "A share release without a valid activation before it means a node's share left for a request no client signed: " +
	"the requesting node may be impersonated (its TLS files stolen) or compromised. Investigate the requesting node and rotate the KEK. " +
	"Releases marked unbound are of the earlier log format, which did not bind releases to a client's request."

func releasersWords(a *activationRow) string {
	s := strings.Join(a.Releasers, ", ")
	if a.Unbound {
		s = strings.TrimSpace(s + " (earlier format: as the serving node reported them; no signed request)")
	}
	return s
}
