package libshake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// MapFile is the name of an image's map of removed functions.
const MapFile = "shake-map.json"

// Map lists, per shaken object of an image, the functions removed: what
// bespoke run and verify name when the program traps in one.
type Map struct {
	Objects []MapObject `json:"objects"`
}

// MapObject is one shaken object of a Map. TextAddr and TextOffset place
// its .text in the file (the kernel reports a fault's file offset).
type MapObject struct {
	Path string `json:"path"`
	Host string `json:"host"`
	// HostSHA256 is the host file's hash when the image was built (its
	// user sets it): a restore copies the host's file again, and must not
	// take another one.
	HostSHA256 string     `json:"host_sha256,omitempty"`
	TextAddr   uint64     `json:"text_addr"`
	TextOffset uint64     `json:"text_offset"`
	Removed    []Function `json:"removed"`
}

// MapObject returns the map entry of r.
func (r *Result) MapObject() MapObject {
	return MapObject{Path: r.Path, Host: r.host, TextAddr: r.textAddr, TextOffset: r.textOffset, Removed: r.Ranges}
}

// ReadMap reads the map at file; nil, nil when there is none.
func ReadMap(file string) (*Map, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	m := &Map{}
	if err == nil {
		err = json.Unmarshal(data, m)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the map of removed functions: %w", err)
	}
	return m, nil
}

// faultRE matches the file part of a kernel fault report: "in
// libc.so.6[3c050,7f12a0000000+1a2000]" (6.12: the file offset of the
// instruction, then the mapping).
var faultRE = regexp.MustCompile(` in ([^\[\s]+)\[([0-9a-f]+),[0-9a-f]+\+[0-9a-f]+\]`)

// Removal is a removed function a fault hit.
type Removal struct {
	Object   string `json:"object"`
	Function string `json:"function"`
	// Fault is the kernel's report.
	Fault string `json:"fault"`
}

// Fault returns the removed function the kernel's fault report msg (a
// guestinit fault line) points at, if any. An int3 trap reports the
// address after the int3.
func (m *Map) Fault(msg string) (Removal, bool) {
	sm := faultRE.FindStringSubmatch(msg)
	if m == nil || sm == nil {
		return Removal{}, false
	}
	off, err := strconv.ParseUint(sm[2], 16, 64)
	if err != nil {
		return Removal{}, false
	}
	for _, o := range m.Objects {
		if path.Base(o.Path) != sm[1] || off < o.TextOffset {
			continue
		}
		addr := off - o.TextOffset + o.TextAddr
		// An int3 trap reports the address after the int3; any other
		// fault the faulting instruction's.
		if strings.Contains(msg, " trap int3 ") {
			addr--
		}
		r := Result{Ranges: o.Removed}
		if f, ok := r.Lookup(addr); ok {
			return Removal{Object: o.Path, Function: f.Name, Fault: msg}, true
		}
	}
	return Removal{}, false
}

// String says what happened: "FUNCTION of OBJECT".
func (r Removal) String() string { return r.Function + " of " + r.Object }

// Entry is r as a Keep entry and a spec's shake_remove names it:
// "OBJECT:FUNCTION".
func (r Removal) Entry() string { return r.Object + ":" + r.Function }
