// Package archtest holds no code: its test, imports_test.go, checks the import graph
// against the arrows of the "Packages" section of docs/design.md (go test ./internal/archtest).
package archtest
