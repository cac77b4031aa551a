package main

import "github.com/custos-eu/custos/backup/agent"

// The store's object name suffixes, as the backup tests plant objects.
const (
	suffixArchive  = agent.SuffixArchive
	suffixIndex    = agent.SuffixIndex
	suffixManifest = agent.SuffixManifest
)
