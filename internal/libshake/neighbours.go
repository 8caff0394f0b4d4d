package libshake

import (
	"fmt"
	"slices"
)

// Neighbours returns the removed functions of o to restore together with
// the removed function name, name first: the removed functions that the
// callers of name call directly (its siblings: a caller that ran took a
// path the trace did not see, and its other callees on that path are
// likely next), and, transitively, the removed functions that those and
// name call directly. A profile's smoke boot restores one trapped
// function per boot; redis's clientsCron, run in the guest with clients
// connected and on the host without, trapped in 11 functions one after
// the other, of which this finds the rest from the first. It reads o's
// host file; the caller has checked its hash.
func (o MapObject) Neighbours(name string) ([]string, error) {
	i := slices.IndexFunc(o.Removed, func(f Function) bool { return f.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("%s of %s was not removed", name, o.Path)
	}
	obj, err := load(Object{Path: o.Path, Host: o.Host})
	if err != nil {
		return nil, err
	}
	defer obj.close()
	out := []string{name}
	if obj.textData == nil {
		return out, nil
	}
	removed := map[uint64]string{}
	for _, f := range o.Removed {
		removed[f.Start] = f.Name
	}
	seen := map[uint64]bool{o.Removed[i].Start: true}
	queue := []uint64{o.Removed[i].Start}
	add := func(t uint64) {
		if n, ok := removed[t]; ok && !seen[t] {
			seen[t] = true
			queue = append(queue, t)
			out = append(out, n)
		}
	}
	for _, f := range obj.funcs {
		if f.gap || removed[f.start] != "" {
			continue
		}
		ts := obj.calls(f)
		if slices.Contains(ts, o.Removed[i].Start) {
			for _, t := range ts {
				add(t)
			}
		}
	}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		if j := obj.find(a); j >= 0 {
			for _, t := range obj.calls(obj.funcs[j]) {
				add(t)
			}
		}
	}
	return out, nil
}

// calls returns the targets of f's direct calls and jumps.
func (o *object) calls(f fn) []uint64 {
	var ts []uint64
	walk(f.start, o.code(f), func(next uint64, in inst) {
		if in.branch {
			ts = append(ts, next+uint64(in.rel))
		}
	})
	return ts
}
