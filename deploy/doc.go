// Package deploy holds no code: it is the home of custosd's packaging (the
// systemd unit, sysusers and tmpfiles files in systemd/, an example
// configuration, a container build file) and of the test that checks them:
// systemd-analyze verify on the unit, the hardening it promises, the example
// configuration loading with keysvc/nodecfg, and the Containerfile agreeing
// with go.mod, the Makefile and the commands in the repository.
package deploy
