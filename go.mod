module github.com/custos-eu/custos

go 1.26

require (
	github.com/ThalesGroup/crypto11 v1.5.0 // indirect
	github.com/cloudflare/circl v1.6.5 // indirect
	github.com/miekg/pkcs11 v1.1.2 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/thales-e-security/pool v0.0.2 // indirect
)
