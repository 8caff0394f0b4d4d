package image

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/libshake"
	"github.com/bespoke-os/bespoke/internal/spec"
)

// ShakeReport is report.json's shake: what --shake-libs removed.
type ShakeReport struct {
	Mode         string             `json:"mode"`
	Objects      []*libshake.Result `json:"objects"`
	TextBytes    int64              `json:"text_bytes"`
	RemovedBytes int64              `json:"removed_bytes"`
	Removed      int                `json:"removed_functions"`
	// GadgetsBefore and GadgetsAfter sum the objects' ROP gadgets
	// (libshake.Gadgets).
	GadgetsBefore int `json:"gadgets_before"`
	GadgetsAfter  int `json:"gadgets_after"`
	// Restored are functions kept beyond the analysis or the profile,
	// FILE:FUNCTION: verify's fixes (fixes.json shake_keep) and what the
	// smoke boot of a profile-shaken image ran.
	Restored []string `json:"restored,omitempty"`
}

// shakeObjects are the x86-64 ELF files among the root's host files.
func shakeObjects(files []initramfs.HostFile) []libshake.Object {
	var objs []libshake.Object
	for _, f := range files {
		if libshake.IsELF(f.Source) {
			objs = append(objs, libshake.Object{Path: f.Path, Host: f.Source, Loader: f.Kind == "interpreter" || libshake.IsLoader(f.Path)})
		}
	}
	return objs
}

// keepLists splits FILE:FUNCTION entries into lists by file.
func keepLists(entries []string) map[string][]string {
	out := map[string][]string{}
	for _, e := range entries {
		if f, fn, ok := strings.Cut(e, ":"); ok {
			out[f] = append(out[f], fn)
		}
	}
	return out
}

// shakeRoot returns the root's Rewrite for a spec that shakes its
// libraries: shaken copies go to dir, the map to stage.
func (b *builder) shakeRoot(dir string, keep []string, functionsRun map[string][]uint64) func([]initramfs.HostFile) (map[string]string, error) {
	if b.sp.ShakeLibs == spec.ShakeOff {
		return nil
	}
	return func(files []initramfs.HostFile) (map[string]string, error) {
		// A function verify --fix restored stays, shake_remove or not.
		remove := slices.DeleteFunc(slices.Clone(b.sp.ShakeRemove), func(r string) bool { return slices.Contains(keep, r) })
		var ran map[string][]uint64
		if b.sp.ShakeLibs == spec.ShakeProfile {
			if ran = functionsRun; ran == nil {
				return nil, errors.New("shake_libs: profile needs the trace's function coverage, and this build has none (a manifest given with --manifest, or traced without it): build without --manifest")
			}
		}
		sm, rep, repl, err := shakeFiles(shakeObjects(files), keepLists(keep), keepLists(remove), ran, dir)
		if err != nil {
			return nil, err
		}
		rep.Mode = b.sp.ShakeLibs
		rep.Restored = keep
		for _, r := range rep.Objects {
			switch {
			case r.Whole != "":
				fmt.Fprintf(b.log, "shake %s: kept whole: %s\n", r.Path, r.Whole)
			default:
				fmt.Fprintf(b.log, "shake %s: %d of %d functions removed, %s of %s of code; ROP gadgets %d -> %d\n", r.Path, r.Removed, r.Functions, humanBytes(r.RemovedBytes), humanBytes(r.TextBytes), r.GadgetsBefore, r.GadgetsAfter)
			}
			for _, u := range r.Unknown {
				fmt.Fprintf(b.log, "shake %s: no function %s to keep\n", r.Path, u)
			}
		}
		b.report.Shake = rep
		if err := writeJSON(filepath.Join(b.stage, libshake.MapFile), sm); err != nil {
			return nil, err
		}
		return repl, nil
	}
}

// shakeFiles shakes objs and writes the shaken copies below dir.
func shakeFiles(objs []libshake.Object, keep, remove map[string][]string, ran map[string][]uint64, dir string) (*libshake.Map, *ShakeReport, map[string]string, error) {
	results, err := libshake.Shake(libshake.Options{Objects: objs, Keep: keep, Remove: remove, Ran: ran})
	if err != nil {
		return nil, nil, nil, err
	}
	sm := &libshake.Map{Objects: []libshake.MapObject{}}
	rep := &ShakeReport{Objects: results}
	repl := map[string]string{}
	for _, r := range results {
		rep.TextBytes += r.TextBytes
		rep.RemovedBytes += r.RemovedBytes
		rep.Removed += r.Removed
		rep.GadgetsBefore += r.GadgetsBefore
		rep.GadgetsAfter += r.GadgetsAfter
		if len(r.Ranges) == 0 {
			continue
		}
		out := filepath.Join(dir, filepath.FromSlash(r.Path))
		if err := r.Write(out); err != nil {
			return nil, nil, nil, fmt.Errorf("shaking %s: %w", r.Path, err)
		}
		repl[r.Path] = out
		mo := r.MapObject()
		if mo.HostSHA256, err = ksrc.FileSum(mo.Host); err != nil {
			return nil, nil, nil, fmt.Errorf("shaking %s: %w", r.Path, err)
		}
		sm.Objects = append(sm.Objects, mo)
	}
	return sm, rep, repl, nil
}

// restoreFunctions writes, for each FILE:FUNCTION of keep, FILE with the
// function restored into stage, and stage's shake map without it. It
// returns the files to add to the root and where their data is.
func restoreFunctions(dir, stage string, keep []Fix, log io.Writer) ([]string, map[string]string, error) {
	if len(keep) == 0 {
		return nil, nil, nil
	}
	sm, err := libshake.ReadMap(filepath.Join(dir, libshake.MapFile))
	if err != nil {
		return nil, nil, err
	}
	if sm == nil {
		return nil, nil, fmt.Errorf("restoring %s: the image has no %s", whats(keep)[0], libshake.MapFile)
	}
	replace := map[string]string{}
	var paths []string
	for _, k := range keep {
		file, fn, _ := strings.Cut(k.What, ":")
		i := slices.IndexFunc(sm.Objects, func(o libshake.MapObject) bool { return o.Path == file })
		if i < 0 {
			return nil, nil, fmt.Errorf("restoring %s: %s was not shaken", fn, file)
		}
		if want := sm.Objects[i].HostSHA256; want != "" {
			if sum, err := ksrc.FileSum(sm.Objects[i].Host); err != nil || sum != want {
				return nil, nil, fmt.Errorf("restoring %s in %s: the host's %s is not the file the image was built from (an upgrade?): rebuild the image with bespoke build", fn, file, sm.Objects[i].Host)
			}
		}
		out := filepath.Join(stage, ".restored", filepath.FromSlash(file))
		if sm.Objects[i], err = sm.Objects[i].Restore(fn, out); err != nil {
			return nil, nil, err
		}
		if _, ok := replace[file]; !ok {
			paths = append(paths, file)
		}
		replace[file] = out
		fmt.Fprintf(log, "amend: root: restored %s in %s\n", fn, file)
	}
	if err := writeJSON(filepath.Join(stage, libshake.MapFile), sm); err != nil {
		return nil, nil, err
	}
	return paths, replace, nil
}

// Neighbours returns, FILE:FUNCTION, the removed functions of the image in
// dir to restore beside entry (FILE:FUNCTION), which the guest ran: what
// its callers and it call directly that the profile removed, and what
// those call (libshake.MapObject.Neighbours), without entry itself.
func Neighbours(dir, entry string) ([]string, error) {
	sm, err := libshake.ReadMap(filepath.Join(dir, libshake.MapFile))
	if err != nil || sm == nil {
		return nil, err
	}
	file, fn, _ := strings.Cut(entry, ":")
	for _, o := range sm.Objects {
		if o.Path != file {
			continue
		}
		ns, err := o.Neighbours(fn)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, n := range ns[1:] {
			out = append(out, file+":"+n)
		}
		return out, nil
	}
	return nil, nil
}
