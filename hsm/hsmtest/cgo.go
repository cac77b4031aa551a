//go:build cgo

package hsmtest

const cgoEnabled = true
