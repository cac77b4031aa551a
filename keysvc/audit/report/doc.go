// Package report is the custody report of an evidence pack, for a
// compliance officer: what the pack shows of the KEKs and their
// lifecycles, unwraps, denials, ceremonies and their approvers, transfers,
// restore drills, destroyed versions, activations and share releases.
//
// Build reads a pack once, verifying it against a trust file
// (audit.Verify) and gathering the report from the entries as they pass;
// a pack that fails is not reported on unless asked (Options.Unverified),
// and then under a banner, as is a pack not verified at all (no trust).
// A Report renders as one self-contained HTML page (inline CSS, the chart
// as inline SVG, no script, nothing fetched) or as Markdown:
//
//	r, err := report.Build(pack, report.Options{Pack: name, Trust: trust, TrustName: trustName, Generated: now})
//	err = r.HTML(w) // or r.Markdown(w)
//
// Every value from the pack is escaped in both. The entry types it reads
// are the log's (keysvc/ledger types.go).
package report
