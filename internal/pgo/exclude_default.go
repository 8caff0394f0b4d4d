package pgo

import _ "embed"

// DefaultExclusions is the exclusion file profile-guided builds use unless
// the user gives another (exclude.default in this package).
//
//go:embed exclude.default
var DefaultExclusions []byte
