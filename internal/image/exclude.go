package image

import (
	"path"
	"path/filepath"

	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/trace"
)

// Exclusion says why the host path p must never be added to an image
// built from the trace m and the spec sp, or "" when it may be: the trace
// excluded it (or a directory holding it) as a secret, the spec's exclude
// matches it, or it is a secret bespoke recognizes now (a file the trace
// never saw). verify --fix asks before it adds a file, and Amend refuses
// what it names.
const neverCopied = "bespoke never copies it into an image; if the program needs it, give it to the guest at run time on a volume (bespoke run -v FILE:DIR)"

func Exclusion(m *manifest.Manifest, sp *spec.Spec, p string) string {
	p = path.Clean(p)
	why := exclusion(m, sp, p)
	// A symlink brings its target along: that must be allowed too.
	if real, err := filepath.EvalSymlinks(p); why == "" && err == nil && real != p {
		why = exclusion(m, sp, real)
	}
	return why
}

func exclusion(m *manifest.Manifest, sp *spec.Spec, p string) string {
	if m != nil {
		for q := p; ; q = path.Dir(q) {
			for _, e := range m.Excluded {
				if path.Clean(e.Path) == q {
					return e.Reason + ", excluded by the trace: " + neverCopied
				}
			}
			if q == "/" {
				break
			}
		}
	}
	if sp != nil && sp.Excluded(p) {
		return "matched by the spec's exclude: take the pattern out of the spec to include it"
	}
	if reason, ok := trace.SensitiveFile(p); ok {
		return reason + ": " + neverCopied
	}
	return ""
}
