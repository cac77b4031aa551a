package report

// The HTML custody report's template (html/template escapes every value in
// it; the chart comes in as SVG that svgTemplate escaped).

const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Key custody report: cluster {{.Cluster}}</title>
<style>
/* Every table fits its page: a 1280 px window or an A4 sheet. Long ids,
   hashes and identities wrap anywhere (code, .x); times and numbers never
   wrap. */
@page { size: A4; margin: 12mm 10mm; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; max-width: 100%; }
table.wide { width: 100%; }
thead { display: table-header-group; }
th, td { border: 1px solid #d4d4d4; padding: .25rem .4rem; text-align: left; vertical-align: top; overflow-wrap: break-word; }
th { background: #f3f3f3; }
/* Cells that may hold long ids or hashes (x) break them anywhere, so that
   they never widen the table; words elsewhere stay whole. */
td.x, .x { overflow-wrap: anywhere; }
td.x, td:has(> code) { min-width: 6em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { white-space: nowrap; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .85em; overflow-wrap: anywhere; }
.banner { padding: .8rem 1rem; border-radius: 4px; margin: 1rem 0; }
.ok { background: #e6f4ea; border: 1px solid #34a853; }
.bad { background: #fdecea; border: 2px solid #d93025; font-weight: bold; }
.muted { color: #666; }
.warn { color: #b3261e; font-weight: bold; }
.chart { overflow-x: auto; }
.chart svg { max-width: 100%; height: auto; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 10pt; }
  table { font-size: 7.5pt; }
  th, td { padding: .15rem .25rem; }
  h2, h3 { break-after: avoid; }
  tr { break-inside: avoid; }
  .chart { overflow: visible; }
  .banner, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
</style>
</head>
<body>
<h1>Key custody report: cluster {{.Cluster}}</h1>
<p class="muted">Generated {{time .Generated}} by <code>custos audit report</code> from an evidence pack.</p>
{{if .Verified}}
<div class="banner ok"><strong>Verified.</strong> {{.Verification}}</div>
{{else}}
<div class="banner bad">NOT VERIFIED. {{.Verification}} Nothing in this report may be relied on until the pack verifies.</div>
{{end}}

<h2>Scope</h2>
<table>
<tr><th>Evidence pack</th><td><code>{{.Pack}}</code></td></tr>
<tr><th>Pack SHA-256</th><td><code>{{.PackSHA256}}</code></td></tr>
<tr><th>Log origin</th><td><code>{{.Origin}}</code></td></tr>
<tr><th>Entries</th><td>{{.From}} to {{.To}} (exclusive): {{.Entries}} entries</td></tr>
<tr><th>Time span</th><td class="t">{{time .FirstTime}} to {{time .LastTime}}</td></tr>
<tr><th>Checkpoint</th><td>size {{.CheckpointSize}}, root <code>{{.CheckpointRoot}}</code>{{if .CheckpointSigner}}, signed by <code>{{.CheckpointSigner}}</code>{{end}}</td></tr>
<tr><th>Pack created</th><td class="t">{{time .Created}}</td></tr>
</table>

<h2>Summary</h2>
<table>
<tr><th>KEKs</th><td class="n">{{len .KEKs}}</td></tr>
<tr><th>Unwraps served</th><td class="n">{{.UnwrapTotal}}</td></tr>
<tr><th>Unwraps answered then withdrawn</th><td class="n">{{.Withdrawn}}</td></tr>
<tr><th>Denied or failed operations</th><td class="n">{{.DenialTotal}}</td></tr>
<tr><th>Ceremonies</th><td class="n">{{len .Ceremonies}}</td></tr>
<tr><th>Cross-border transfers</th><td class="n">{{len .Transfers}}</td></tr>
<tr><th>Destroyed KEK versions</th><td class="n">{{len .Destroyed}}</td></tr>
<tr><th>Restore drills (missed)</th><td class="n">{{.DrillTotal}} ({{if .DrillMisses}}<span class="warn">{{.DrillMisses}}</span>{{else}}0{{end}})</td></tr>
<tr><th>Datasets without a drill</th><td class="n">{{if .Undrilled}}<span class="warn">{{.Undrilled}}</span>{{else}}0{{end}}</td></tr>
<tr><th>KEK activations</th><td class="n">{{.ActivationTotal}}</td></tr>
<tr><th>Flagged activations and share releases</th><td class="n">{{if .FlagTotal}}<span class="warn">{{.FlagTotal}}</span>{{else}}0{{end}}</td></tr>
</table>

<h2>{{.Chart.Title}}</h2>
<div class="chart">{{.ChartSVG}}</div>

<h2>KEKs and their lifecycles</h2>
{{range .KEKs}}
<h3>KEK <code>{{.ID}}</code></h3>
{{if .LegalHold}}<p class="warn">Under legal hold at the end of the pack: {{.LegalHold}}</p>{{end}}
<table class="wide">
<thead><tr><th>version</th><th>state</th><th>created (entry)</th><th>threshold</th><th>share holders</th><th>escrow</th><th>destroyed (entry)</th><th>recovered (entries)</th></tr></thead>
{{range .Versions}}<tr><td class="n">{{.Version}}</td><td>{{dash .State}}</td><td class="n">{{entry .Created}}</td><td>{{dash .Threshold}}</td><td class="x">{{dash .Holders}}</td><td class="x">{{dash .Escrow}}</td><td class="n">{{entry .Destroyed}}</td><td>{{list .Recovered}}</td></tr>
{{end}}</table>
<table class="wide">
<thead><tr><th>entry</th><th>time</th><th>event</th><th>version</th><th>detail</th><th>approvers</th><th>ceremony</th></tr></thead>
{{range .Events}}<tr><td class="n">{{.Index}}</td><td class="t">{{time .Time}}</td><td>{{if .Refused}}<span class="warn">{{.What}}</span>{{else}}{{.What}}{{end}}</td><td>{{dash .Version}}</td><td class="x">{{.Detail}}</td><td class="x">{{dash .Approvers}}</td><td><code>{{.Proposal}}</code></td></tr>
{{end}}</table>
{{else}}
<p>None recorded.</p>
{{end}}

<h2>Unwraps per identity, region and KEK</h2>
{{if .Unwraps}}
<table class="wide">
<thead><tr><th>KEK</th><th>identity</th><th>region</th><th>unwraps</th><th>withdrawn</th><th>first</th><th>last</th></tr></thead>
{{range .Unwraps}}<tr><td><code>{{.KEK}}</code></td><td><code>{{.Identity}}</code></td><td>{{dash .Region}}</td><td class="n">{{.Count}}</td><td class="n">{{.Withdrawn}}</td><td class="t">{{time .First}}</td><td class="t">{{time .Last}}</td></tr>
{{end}}</table>
{{else}}<p>None recorded.</p>{{end}}
<h3>Key operations per KEK</h3>
{{if .KeyOps}}
<table class="wide">
<thead><tr><th>KEK</th><th>wrap</th><th>unwrap</th><th>datakey</th><th>rewrap</th><th>activations</th><th>share releases</th><th>denied</th></tr></thead>
{{range .KeyOps}}<tr><td><code>{{.KEK}}</code></td><td class="n">{{.Wrap}}</td><td class="n">{{.Unwrap}}</td><td class="n">{{.DataKey}}</td><td class="n">{{.Rewrap}}</td><td class="n">{{.Activate}}</td><td class="n">{{.Release}}</td><td class="n">{{.Denied}}</td></tr>
{{end}}</table>
{{else}}<p>None recorded.</p>{{end}}

<h2>Activations and share releases</h2>
{{if .FlagTotal}}
<p class="warn">{{.FlagTotal}} flagged. {{flagAdvice}}</p>
<table class="wide">
<thead><tr><th>entry</th><th>time</th><th>type</th><th>node</th><th>KEK</th><th>to</th><th>for</th><th>finding</th><th>what it means</th></tr></thead>
{{range .ReleaseFlags}}<tr><td class="n">{{.Index}}</td><td class="t">{{time .Time}}</td><td>{{.Type}}</td><td class="x">{{dash .Node}}</td><td class="x">{{dash .KEK}}</td><td class="x">{{dash .To}}</td><td><code>{{dash .For}}</code></td><td><code class="warn">{{.Code}}</code></td><td class="x">{{.Why}}</td></tr>
{{end}}</table>
{{else}}<p>Nothing flagged: every share release answers an activation logged before it, with the client's signed request.</p>{{end}}
{{if .Activations}}
<p>The first {{len .Activations}} of {{.ActivationTotal}} activations:</p>
<table class="wide">
<thead><tr><th>activation (entry)</th><th>time</th><th>client</th><th>KEK</th><th>serving node</th><th>shares released by</th></tr></thead>
{{range .Activations}}<tr><td class="n">{{.Index}}</td><td class="t">{{time .Time}}</td><td><code>{{dash .Client}}</code></td><td class="x">{{.KEK}}</td><td class="x">{{dash .Node}}</td><td class="x">{{releasers .}}</td></tr>
{{end}}</table>
{{else}}<p>No activations recorded.</p>{{end}}

<h2>Denials</h2>
{{if .Denials}}
<table>
<thead><tr><th>type</th><th>code</th><th>count</th><th>last entry</th></tr></thead>
{{range .Denials}}<tr><td>{{.Type}}</td><td><code>{{.Code}}</code></td><td class="n">{{.Count}}</td><td class="n">{{.Last}}</td></tr>
{{end}}</table>
<p>The first {{len .DenialList}} denied entries:</p>
<table class="wide">
<thead><tr><th>entry</th><th>time</th><th>type</th><th>actor</th><th>KEK</th><th>reason</th></tr></thead>
{{range .DenialList}}<tr><td class="n">{{.Index}}</td><td class="t">{{time .Time}}</td><td>{{.Type}}</td><td><code>{{.Actor}}</code></td><td class="x">{{dash .KEK}}</td><td class="x">{{.Why}}</td></tr>
{{end}}</table>
{{else}}<p>None recorded.</p>{{end}}

<h2>Ceremonies and their approvers</h2>
{{if .Ceremonies}}
<table class="wide">
<thead><tr><th>ceremony</th><th>operation</th><th>proposer</th><th>approvers</th><th>status</th><th>proposed (entry)</th><th>closed (entry)</th><th>closed at</th><th>what it did</th></tr></thead>
{{range .Ceremonies}}<tr><td><code>{{.ID}}</code></td><td>{{.Operation}}</td><td class="x">{{dash .Proposer}}</td><td class="x">{{dash (join .Approvers ", ")}}</td><td>{{if eq .Status "refused"}}<span class="warn">refused</span>: <span class="x">{{.Why}}</span>{{else}}{{.Status}}{{end}}</td><td class="n">{{entry .Proposed}}</td><td class="n">{{entry .Closed}}</td><td class="t">{{time .ClosedAt}}</td><td class="x">{{.Description}}</td></tr>
{{end}}</table>
{{else}}<p>None recorded.</p>{{end}}

<h2>Cross-border transfers</h2>
{{if .Transfers}}
<table class="wide">
<thead><tr><th>entry</th><th>time</th><th>agent</th><th>outcome</th><th>dataset</th><th>checksum</th><th>destination</th><th>why</th><th>policy</th><th>other</th></tr></thead>
{{range .Transfers}}<tr><td class="n">{{.Index}}</td><td class="t">{{time .Time}}</td><td><code>{{.Actor}}</code></td><td>{{.Outcome}}</td><td class="x">{{dash .Dataset}}</td><td><code>{{dash .Checksum}}</code></td><td class="x">{{dash .Where}}</td><td class="x">{{dash .Why}}</td><td class="x">{{dash .Policy}}</td><td class="x">{{.Other}}</td></tr>
{{end}}</table>
{{if .TransferMore}}<p>… and {{.TransferMore}} more.</p>{{end}}
{{else}}<p>None recorded.</p>{{end}}

<h2>Restore drills</h2>
{{if .Drills}}
<p>{{.DrillWords}}</p>
<table class="wide">
<thead><tr><th>dataset</th><th>last drill</th><th>entry</th><th>archive</th><th>restore time</th><th>RTO</th><th>result</th><th>drills</th><th>missed</th></tr></thead>
{{range .Drills}}<tr><td><code>{{.Dataset}}</code></td>{{with .Last}}<td class="t">{{time .Time}}</td><td class="n">{{.Index}}</td><td><code>{{dash .Archive}}</code></td><td class="n">{{seconds .Restore}}</td><td class="n">{{seconds .RTO}}</td><td class="x">{{if .Missed}}<span class="warn">{{.Verdict}}</span>{{else}}{{.Verdict}}{{end}}</td>{{else}}<td colspan="6" class="warn">No drill in this pack.</td>{{end}}<td class="n">{{.Drills}}</td><td class="n">{{if .Misses}}<span class="warn">{{.Misses}}</span>{{else}}0{{end}}</td></tr>
{{end}}</table>
{{if .MissedDrills}}
<h3>Missed drills</h3>
<table class="wide">
<thead><tr><th>entry</th><th>time</th><th>dataset</th><th>archive</th><th>agent</th><th>restore time</th><th>RTO</th><th>result</th></tr></thead>
{{range .MissedDrills}}<tr><td class="n">{{.Index}}</td><td class="t">{{time .Time}}</td><td><code>{{.Dataset}}</code></td><td><code>{{dash .Archive}}</code></td><td><code>{{.Agent}}</code></td><td class="n">{{seconds .Restore}}</td><td class="n">{{seconds .RTO}}</td><td class="x warn">{{.Verdict}}</td></tr>
{{end}}</table>
{{if gt .DrillMisses (len .MissedDrills)}}<p>… and {{sub .DrillMisses (len .MissedDrills)}} more.</p>{{end}}
{{end}}
{{else}}<p>None recorded: the pack has no backup entry (transfer, prune or drill) naming a dataset.</p>{{end}}

<h2>Destroyed KEK versions</h2>
{{range .Destroyed}}
<h3><code>{{.KEK}}</code> version {{.Version}}</h3>
<table>
<tr><th>Destroyed in entry</th><td class="n">{{entry .Entry}}</td></tr>
<tr><th>Ceremony</th><td><code>{{dash .Ceremony}}</code></td></tr>
<tr><th>Approved by</th><td class="x">{{dash .Approvers}}</td></tr>
<tr><th>Public key</th><td><code>{{dash .PublicKey}}</code></td></tr>
<tr><th>Certificate</th><td>{{if .Certificate}}in the pack, {{if .Complete}}complete: every holder attested{{else}}<span class="warn">NOT complete</span>{{end}}{{else}}not in the pack (only the log entries below){{end}}</td></tr>
</table>
<table>
<thead><tr><th>share holder</th><th>destruction</th><th>entry</th></tr></thead>
{{range .Holders}}<tr><td>{{.Node}}</td><td>{{if .Attested}}attested: its HSM key is destroyed{{else}}<span class="warn">NOT attested</span>{{end}}</td><td class="n">{{entry .Entry}}</td></tr>
{{end}}</table>
{{if .Escrow}}<p class="warn">Escrow caveat: {{.Escrow}}.</p>{{end}}
{{else}}
<p>None recorded.</p>
{{end}}

<h2>Officers</h2>
{{if .Officers}}
<table>
<thead><tr><th>officer</th><th>key fingerprint</th></tr></thead>
{{range .Officers}}<tr><td>{{.ID}}</td><td><code>{{.Fingerprint}}</code></td></tr>
{{end}}</table>
{{else}}<p>None in the pack.</p>{{end}}

<h2>Entries by type</h2>
<table>
<thead><tr><th>type</th><th>entries</th></tr></thead>
{{range .ByType}}<tr><td>{{.Name}}</td><td class="n">{{.Count}}</td></tr>
{{end}}</table>

<p class="muted">Reproduce the verification: <code>custos audit verify {{.Pack}} --trust TRUSTFILE</code>. What a verified pack proves, and what it cannot, is in the auditor's guide (docs/auditors.md).</p>
</body>
</html>
`
