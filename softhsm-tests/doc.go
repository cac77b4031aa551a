// Package softhsmtests holds Custos's integration tests against real SoftHSM
// tokens (and, as they land, multi-node clusters). It has no production code.
package softhsmtests
