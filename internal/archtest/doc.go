// Package archtest holds no code: its test, imports_test.go, checks the import graph
// against the arrows of DESIGN.md's "Packages" section (go test ./internal/archtest).
package archtest
