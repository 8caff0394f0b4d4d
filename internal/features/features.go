// Package features maps the facts of a manifest (syscalls, socket families,
// filesystem types, /proc and /sys paths, ioctl families) to the Linux 6.12
// x86_64 Kconfig symbols that provide them. The knowledge is data: a table
// whose every row names its source.
package features

import "github.com/bespoke-os/bespoke/internal/manifest"

// Requirement is one Kconfig symbol a manifest requires, with the facts
// that require it.
type Requirement struct {
	Symbol string   // without the CONFIG_ prefix, e.g. "EPOLL"
	Facts  []string // e.g. "epoll_wait x1234", "socket(AF_INET, SOCK_STREAM, 0) x2"
	// Sources says where each row's knowledge comes from (Kconfig file and
	// help text, syscall table), one per distinct row that matched.
	Sources []string
}

// Required returns the symbols m requires, sorted by symbol.
func Required(m *manifest.Manifest) []Requirement {
	// TODO(features helper): implement from the table.
	return nil
}
