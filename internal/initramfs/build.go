package initramfs

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"golang.org/x/sys/unix"
)

// Kinds of files in a Report, beyond the manifest's own kinds
// ("program", "library", "interpreter", "config", "data", ...).
const (
	KindInit      = "init"      // the guest init, /init
	KindGenerated = "generated" // /etc files and init.json written by bespoke
	KindDevice    = "device"    // /dev/console, /dev/null
	KindDir       = "dir"       // a parent directory or a mount point
	KindHome      = "home"      // the program user's home directory
	KindInclude   = "include"   // a path from Options.Include
	KindTree      = "tree"      // a path of a data tree (Options.Trees)
	KindSymlinkOf = "symlink"   // a directory symlink met on the way to a file
)

// Generated file contents that do not depend on the options.
const (
	// ResolvConf points at QEMU's user-mode network DNS.
	ResolvConf = "nameserver 10.0.2.3\n"
	// NsswitchConf uses files, and DNS for hosts (glibc >= 2.34 has both
	// built in; no libnss_* module is needed).
	NsswitchConf = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
)

// User is the account the program runs as, written to /etc/passwd and
// /etc/group beside root.
type User struct {
	Name  string `json:"name"` // "" or "root": only root is written
	Uid   int    `json:"uid"`
	Gid   int    `json:"gid"`
	Group string `json:"group,omitempty"` // group name; "" means Name
	Home  string `json:"home,omitempty"`  // "" means "/"
}

// Options says what goes into an initramfs.
type Options struct {
	// Manifest gives the program's ELF closure (Closure), the files it
	// used (Files) and the files never to copy (Excluded). It may be nil.
	Manifest *manifest.Manifest
	// Init is the host path of the static guest init binary, stored as
	// /init (see InitBinary).
	Init string
	// Config is written to protocol.ConfigPath for the init.
	Config protocol.Config
	// User is the program's account; Config.Uid/Gid are what the init
	// uses, User names them.
	User User
	// Include are extra host paths: files, or directories copied
	// recursively.
	Include []string
	// Trees are host paths of data trees (internal/datatrees), copied
	// like Include (files a trace already put in keep their kind), but
	// what is under one of TreeLeave.
	Trees     []string
	TreeLeave []string
	// Exclude are patterns on guest paths: path.Match on the whole path
	// ("/usr/share/locale/*"), "dir/**" for dir and everything under it,
	// and a pattern without a slash ("*.a") on the base name of any path.
	// They apply to everything except /init and the generated files.
	Exclude []string
	// Format is FormatCpio ("" too) or FormatErofs.
	Format string
	// Compression is the initramfs's: "xz" (the default), "gzip" or
	// "none"; or an erofs root's: ErofsLZ4HC (the default) or ErofsLZMA.
	Compression string
	// Output is the archive's path; it is written atomically.
	Output string
	// HostRoot is the directory host paths are read from; "" means "/".
	HostRoot string
	// Rewrite, when set, is shown every regular file copied from the host
	// (not /init nor the generated files) before the archive is written,
	// and returns, by guest path, files to store in their place: files of
	// the same size and mode (bespoke's shaken libraries).
	Rewrite func(files []HostFile) (map[string]string, error)
}

// HostFile is a regular file of the root copied from the host.
type HostFile struct {
	Path   string // guest path
	Source string // host path
	Kind   string
}

// Report says what an initramfs holds and why. It is JSON for the image's
// report.json.
type Report struct {
	// Format is FormatCpio or FormatErofs ("" in reports from before
	// erofs roots: an initramfs).
	Format      string `json:"format,omitempty"`
	Compression string `json:"compression"`
	// Kconfig are the symbols the kernel needs to unpack the archive.
	Kconfig []string `json:"kconfig,omitempty"`
	// UncompressedBytes is the size of the cpio archive,
	// CompressedBytes the size of the file written.
	UncompressedBytes int64  `json:"uncompressed_bytes"`
	CompressedBytes   int64  `json:"compressed_bytes"`
	SHA256            string `json:"sha256"`
	// FileBytes is the sum of the regular files' sizes.
	FileBytes int64        `json:"file_bytes"`
	Files     []FileReport `json:"files"`
	// Dropped are paths left out by an Exclude pattern.
	Dropped []Dropped `json:"dropped,omitempty"`
	// Warnings are things left out for another reason (sockets, paths
	// under /proc, /sys or /dev, which are mounted at boot).
	Warnings []string `json:"warnings,omitempty"`
}

// FileReport is one entry of the archive.
type FileReport struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Type   string `json:"type"` // "file", "dir", "symlink", "char", "block", "fifo"
	Mode   string `json:"mode"` // permission bits in octal, e.g. "0755"
	Uid    int    `json:"uid"`
	Gid    int    `json:"gid"`
	Bytes  int64  `json:"bytes"`
	Link   string `json:"link,omitempty"`
	Device string `json:"device,omitempty"` // "major:minor" for device nodes
	Source string `json:"source,omitempty"` // host path the data was copied from
}

// Dropped is a path an Exclude pattern left out.
type Dropped struct {
	Path    string `json:"path"`
	Pattern string `json:"pattern"`
}

type node struct {
	hdr       Header // Name is the guest path with its leading slash
	source    string // host file to copy the data from
	from      string // when set, the file (Options.Rewrite's) the data is read from instead
	data      []byte // generated data
	kind      string
	generated bool
}

type builder struct {
	root     string
	nodes    map[string]*node
	excluded map[string]string // manifest.Excluded: path -> reason
	patterns []string
	walked   map[string]bool // directories already copied recursively
	// treeLeave are host paths a data tree's walk leaves out
	// (Options.TreeLeave).
	treeLeave []string
	report    *Report
	mtime     int64
}

// Build writes the initramfs described by opts to opts.Output and returns
// what it holds.
func Build(ctx context.Context, opts Options) (*Report, error) {
	if opts.Output == "" {
		return nil, errors.New("building initramfs: no output path")
	}
	format, method := opts.Format, opts.Compression
	if format == "" {
		format = FormatCpio
	}
	switch {
	case method == "" && format == FormatErofs:
		method = ErofsLZ4HC
	case method == "":
		method = DefaultCompression
	}
	syms, err := RootKconfig(format, method)
	if err != nil {
		return nil, fmt.Errorf("building initramfs: %w", err)
	}
	for _, p := range opts.Exclude {
		if _, err := path.Match(strings.TrimSuffix(p, "/**"), "/"); err != nil {
			return nil, fmt.Errorf("building initramfs: exclude pattern %q: %w", p, err)
		}
	}
	if err := checkStatic(opts.Init); err != nil {
		return nil, fmt.Errorf("building initramfs: %w", err)
	}
	b := newBuilder(opts.HostRoot, method, syms)
	b.treeLeave = opts.TreeLeave
	b.report.Format = format
	b.patterns = opts.Exclude
	if m := opts.Manifest; m != nil {
		for _, e := range m.Excluded {
			b.excluded[path.Clean(e.Path)] = e.Reason
		}
		for _, f := range m.Closure {
			kind := f.Kind
			if kind == "" {
				kind = "closure"
			}
			if err := b.addHost(f.Path, kind, false, 0); err != nil {
				return nil, fmt.Errorf("building initramfs: %w", err)
			}
		}
		for _, f := range m.Files {
			if mountedAtBoot(f.Path) {
				b.report.Warnings = append(b.report.Warnings, fmt.Sprintf("%s: not copied: %s is mounted at boot", f.Path, strings.SplitN(f.Path, "/", 3)[1]))
				continue
			}
			kind := f.Kind
			if kind == "" {
				kind = "data"
			}
			if err := b.addHost(f.Path, kind, false, 0); err != nil {
				return nil, fmt.Errorf("building initramfs: %w", err)
			}
		}
	}
	for _, p := range opts.Include {
		if err := b.addHost(p, KindInclude, true, 0); err != nil {
			return nil, fmt.Errorf("building initramfs: include: %w", err)
		}
	}
	for _, p := range opts.Trees {
		if err := b.addHost(p, KindTree, true, 0); err != nil {
			return nil, fmt.Errorf("building initramfs: data tree: %w", err)
		}
	}
	if err := b.addGenerated(opts); err != nil {
		return nil, fmt.Errorf("building initramfs: %w", err)
	}
	if format == FormatErofs {
		// The init's overlay on the read-only root (guestinit).
		for _, d := range []string{protocol.OverlayRW, protocol.OverlayRoot} {
			b.put(d, &node{hdr: Header{Mode: TypeDir | 0o755, Mtime: b.mtime}, kind: KindDir, generated: true}, true)
		}
		// The kernel mounts devtmpfs on /dev before /init (DEVTMPFS_MOUNT,
		// in the erofs root's kernel options): the generated device nodes
		// would be hidden, and only root could lay them out.
		for p, n := range b.nodes {
			if n.kind == KindDevice {
				delete(b.nodes, p)
			}
		}
	}
	if err := b.checkProgram(opts.Config.Path); err != nil {
		return nil, fmt.Errorf("building initramfs: %w", err)
	}
	if err := b.addParents(); err != nil {
		return nil, fmt.Errorf("building initramfs: %w", err)
	}
	if opts.Rewrite != nil {
		if err := b.rewrite(opts.Rewrite); err != nil {
			return nil, fmt.Errorf("building initramfs: %w", err)
		}
	}
	write := func() error { return b.write(ctx, opts.Output, method) }
	if format == FormatErofs {
		write = func() error { return b.writeErofs(ctx, opts.Output) }
	}
	if err := write(); err != nil {
		return nil, fmt.Errorf("building the %s root: %w", format, err)
	}
	return b.report, nil
}

// rewrite hands the host files to fn and reads the files it returns
// instead.
func (b *builder) rewrite(fn func([]HostFile) (map[string]string, error)) error {
	var files []HostFile
	for p, n := range b.nodes {
		if n.source != "" && n.hdr.Type() == TypeReg && n.kind != KindInit && !n.generated {
			files = append(files, HostFile{Path: p, Source: n.source, Kind: n.kind})
		}
	}
	slices.SortFunc(files, func(x, y HostFile) int { return strings.Compare(x.Path, y.Path) })
	repl, err := fn(files)
	if err != nil {
		return err
	}
	for p, from := range repl {
		n, ok := b.nodes[p]
		if !ok || n.source == "" {
			return fmt.Errorf("rewriting %s: not a host file of the root", p)
		}
		fi, err := os.Stat(from)
		if err != nil {
			return fmt.Errorf("rewriting %s: %w", p, err)
		}
		if fi.Size() != n.hdr.Size {
			return fmt.Errorf("rewriting %s: %s has %d bytes, not %d", p, from, fi.Size(), n.hdr.Size)
		}
		n.from = from
	}
	return nil
}

// dataFile is the file a node's data is read from.
func (n *node) dataFile() string {
	if n.from != "" {
		return n.from
	}
	return n.source
}

// newBuilder returns a builder reading host files below root ("" is "/")
// for an archive compressed with method.
func newBuilder(root, method string, syms []string) *builder {
	if root == "" {
		root = "/"
	}
	return &builder{
		root:     root,
		nodes:    map[string]*node{},
		excluded: map[string]string{},
		walked:   map[string]bool{},
		report:   &Report{Compression: method, Kconfig: syms},
		mtime:    sourceDateEpoch(),
	}
}

func mountedAtBoot(p string) bool {
	for _, d := range []string{"/proc", "/sys", "/dev"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// sourceDateEpoch returns $SOURCE_DATE_EPOCH, or 0.
func sourceDateEpoch() int64 {
	if v, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil && v >= 0 {
		return v
	}
	return 0
}

// checkStatic reports whether the init at p is a static x86-64 ELF: the
// kernel runs /init before anything else, with no dynamic loader.
func checkStatic(p string) error {
	if p == "" {
		return errors.New("no guest init binary given (see initramfs.InitBinary)")
	}
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("reading the guest init: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("guest init %s is for %v, want x86-64: rebuild it with GOARCH=amd64", p, f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("guest init %s is dynamically linked: rebuild it with CGO_ENABLED=0 (make)", p)
		}
	}
	return nil
}

// match returns the Exclude pattern matching guest path p, or "".
func (b *builder) match(p string) string {
	for _, pat := range b.patterns {
		q := pat
		if !strings.Contains(q, "/") {
			// A pattern without a slash matches a base name anywhere.
			if ok, _ := path.Match(q, path.Base(p)); ok {
				return pat
			}
			continue
		}
		if !strings.HasPrefix(q, "/") {
			q = "/" + q
		}
		if dir, ok := strings.CutSuffix(q, "/**"); ok {
			if ok, _ := path.Match(dir, p); ok {
				return pat
			}
			// Any ancestor of p matching dir puts p in the subtree.
			for a := path.Dir(p); a != "/"; a = path.Dir(a) {
				if ok, _ := path.Match(dir, a); ok {
					return pat
				}
			}
			continue
		}
		if ok, _ := path.Match(q, p); ok {
			return pat
		}
	}
	return ""
}

// excludedReason returns why p (or a directory holding it) must never be
// copied, or "".
func (b *builder) excludedReason(p string) (string, string) {
	for q := p; ; q = path.Dir(q) {
		if r, ok := b.excluded[q]; ok {
			return q, r
		}
		if q == "/" {
			return "", ""
		}
	}
}

func (b *builder) hostPath(p string) string { return filepath.Join(b.root, filepath.FromSlash(p)) }

const maxLinks = 40

// resolveDir resolves the symlinks in the directory part of p on the host,
// adding each symlink met as a node, and returns p with a real directory.
func (b *builder) resolveDir(p string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	links := 0
	for i := 0; i < len(parts)-1; i++ {
		next := path.Join(cur, parts[i])
		fi, err := os.Lstat(b.hostPath(next))
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("reading %s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(b.hostPath(next))
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
		if b.match(next) == "" {
			b.put(next, &node{hdr: b.header(next, fi, target), kind: KindSymlinkOf}, false)
		}
		// Continue from the target: splice its components in.
		var base string
		if path.IsAbs(target) {
			base = "/"
		} else {
			base = cur
		}
		rest := append(strings.Split(strings.TrimPrefix(path.Join(base, target), "/"), "/"), parts[i+1:]...)
		parts, i, cur = rest, -1, "/"
		if parts[0] == "" { // the target was "/"
			parts = parts[1:]
		}
	}
	return path.Join(cur, parts[len(parts)-1]), nil
}

func (b *builder) header(p string, fi fs.FileInfo, link string) Header {
	h := Header{Name: p, Mode: ModeOf(fi.Mode()), Mtime: b.mtime, Linkname: link}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
		if h.Type() == TypeChar || h.Type() == TypeBlock {
			h.RdevMajor, h.RdevMinor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
		}
	}
	if h.Type() == TypeReg {
		h.Size = fi.Size()
	}
	return h
}

// put adds n at p unless a node is there already (the first reason to
// hold a file wins) or override is set.
func (b *builder) put(p string, n *node, override bool) {
	n.hdr.Name = p
	if _, ok := b.nodes[p]; ok && !override {
		return
	}
	b.nodes[p] = n
}

// leftOut reports whether p, met by a data tree's walk (kind), is under
// one of Options.TreeLeave.
func (b *builder) leftOut(kind, p string) bool {
	return kind == KindTree && slices.ContainsFunc(b.treeLeave, func(l string) bool { return p == l || strings.HasPrefix(p, l+"/") })
}

// addHost adds the host file at guest path p (and, for a symlink, its
// target; for a directory with recursive set, its contents).
func (b *builder) addHost(p, kind string, recursive bool, depth int) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path", p)
	}
	if depth > maxLinks {
		return fmt.Errorf("reading %s: too many levels of symbolic links", p)
	}
	p = path.Clean(p)
	if p == "/" {
		if !recursive {
			return nil
		}
		return errors.New("refusing to copy the whole host root (/)")
	}
	if pat := b.match(p); pat != "" {
		b.report.Dropped = append(b.report.Dropped, Dropped{Path: p, Pattern: pat})
		return nil
	}
	if b.leftOut(kind, p) {
		return nil
	}
	real, err := b.resolveDir(p)
	if err != nil {
		return err
	}
	if b.leftOut(kind, real) {
		return nil
	}
	if pat := b.match(real); pat != "" {
		b.report.Dropped = append(b.report.Dropped, Dropped{Path: real, Pattern: pat})
		return nil
	}
	for _, q := range []string{p, real} {
		if e, reason := b.excludedReason(q); e != "" {
			return fmt.Errorf("%s is never copied into an image (%s): take it out of the spec's include list, or leave it out with an exclude pattern", e, reason)
		}
	}
	if n, ok := b.nodes[real]; ok && !recursive || ok && n.hdr.Type() != TypeDir {
		return nil
	}
	host := b.hostPath(real)
	fi, err := os.Lstat(host)
	if err != nil {
		return fmt.Errorf("reading %s: %w", host, err)
	}
	switch t := fi.Mode().Type(); {
	case t == fs.ModeSymlink:
		target, err := os.Readlink(host)
		if err != nil {
			return fmt.Errorf("reading %s: %w", host, err)
		}
		b.put(real, &node{hdr: b.header(real, fi, target), kind: kind}, false)
		abs := target
		if !path.IsAbs(abs) {
			abs = path.Join(path.Dir(real), target)
		}
		if _, err := os.Lstat(b.hostPath(abs)); errors.Is(err, fs.ErrNotExist) {
			b.report.Warnings = append(b.report.Warnings, fmt.Sprintf("%s: symlink to %s, which does not exist on the host", real, target))
			return nil
		}
		return b.addHost(abs, kind, recursive, depth+1)
	case t.IsRegular():
		f, err := os.Open(host)
		if err != nil {
			return fmt.Errorf("reading %s: %w", host, err)
		}
		f.Close()
		b.put(real, &node{hdr: b.header(real, fi, ""), source: host, kind: kind}, false)
	case t == fs.ModeDir:
		b.put(real, &node{hdr: b.header(real, fi, ""), kind: kind}, false)
		if !recursive || b.walked[real] {
			return nil
		}
		b.walked[real] = true
		ents, err := os.ReadDir(host)
		if err != nil {
			return fmt.Errorf("reading %s: %w", host, err)
		}
		for _, e := range ents {
			if err := b.addHost(path.Join(real, e.Name()), kind, true, depth); err != nil {
				return err
			}
		}
	case t&(fs.ModeDevice|fs.ModeNamedPipe) != 0:
		b.put(real, &node{hdr: b.header(real, fi, ""), kind: kind}, false)
	default:
		b.report.Warnings = append(b.report.Warnings, fmt.Sprintf("%s: not copied: a %v cannot be stored in an initramfs", real, t))
	}
	return nil
}

// addGenerated adds /init, the generated /etc files, device nodes and the
// standard directories, replacing host copies of the same paths.
func (b *builder) addGenerated(opts Options) error {
	initFI, err := os.Stat(opts.Init)
	if err != nil {
		return fmt.Errorf("reading the guest init: %w", err)
	}
	gen := func(p string, mode uint32, data []byte, kind string) {
		b.put(p, &node{
			hdr:       Header{Mode: mode, Size: int64(len(data)), Mtime: b.mtime},
			data:      data,
			kind:      kind,
			generated: true,
		}, true)
	}
	b.put("/init", &node{
		hdr:       Header{Mode: TypeReg | 0o755, Size: initFI.Size(), Mtime: b.mtime},
		source:    opts.Init,
		kind:      KindInit,
		generated: true,
	}, true)
	cfg, err := json.MarshalIndent(opts.Config, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the init config: %w", err)
	}
	gen(protocol.ConfigPath, TypeReg|0o644, append(cfg, '\n'), KindGenerated)
	hostname := opts.Config.Hostname
	if hostname == "" {
		hostname = opts.Config.Name
	}
	if hostname == "" {
		hostname = "bespoke"
	}
	passwd, group := PasswdGroup(opts.User)
	if m := opts.Manifest; m != nil && len(m.UIDs)+len(m.GIDs) > 0 {
		var warn []string
		passwd, group, warn = AddHostIDs(passwd, group, b.hostPath("/etc/passwd"), b.hostPath("/etc/group"), m.UIDs, m.GIDs)
		b.report.Warnings = append(b.report.Warnings, warn...)
	}
	gen("/etc/passwd", TypeReg|0o644, []byte(passwd), KindGenerated)
	gen("/etc/group", TypeReg|0o644, []byte(group), KindGenerated)
	gen("/etc/hosts", TypeReg|0o644, []byte(Hosts(hostname)), KindGenerated)
	gen("/etc/resolv.conf", TypeReg|0o644, []byte(ResolvConf), KindGenerated)
	gen("/etc/nsswitch.conf", TypeReg|0o644, []byte(NsswitchConf), KindGenerated)
	gen("/etc/hostname", TypeReg|0o644, []byte(hostname+"\n"), KindGenerated)

	dev := func(p string, mode, major, minor uint32) {
		b.put(p, &node{
			hdr:       Header{Mode: TypeChar | mode, RdevMajor: major, RdevMinor: minor, Mtime: b.mtime},
			kind:      KindDevice,
			generated: true,
		}, true)
	}
	dev("/dev/console", 0o600, 5, 1)
	dev("/dev/null", 0o666, 1, 3)
	dir := func(p string, mode uint32, uid, gid int, kind string) {
		b.put(p, &node{hdr: Header{Mode: TypeDir | mode, Uid: uid, Gid: gid, Mtime: b.mtime}, kind: kind, generated: true}, true)
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
		dir(d, 0o755, 0, 0, KindDir)
	}
	dir("/tmp", 0o1777, 0, 0, KindDir)
	if home := opts.User.Home; opts.User.Name != "" && opts.User.Name != "root" && home != "" && home != "/" {
		if _, ok := b.nodes[path.Clean(home)]; !ok {
			dir(path.Clean(home), 0o755, opts.User.Uid, opts.User.Gid, KindHome)
		}
	} else if opts.Config.Uid == 0 {
		dir("/root", 0o700, 0, 0, KindHome)
	}
	return nil
}

// PasswdGroup returns /etc/passwd and /etc/group for root and u.
func PasswdGroup(u User) (passwd, group string) {
	passwd = "root:x:0:0:root:/root:/bin/sh\n"
	group = "root:x:0:\n"
	if u.Name == "" || u.Name == "root" {
		return passwd, group
	}
	home := u.Home
	if home == "" {
		home = "/"
	}
	g := u.Group
	if g == "" {
		g = u.Name
	}
	passwd += fmt.Sprintf("%s:x:%d:%d:%s:%s:/usr/sbin/nologin\n", u.Name, u.Uid, u.Gid, u.Name, home)
	if u.Gid != 0 {
		group += fmt.Sprintf("%s:x:%d:\n", g, u.Gid)
	}
	return passwd, group
}

// AddHostIDs adds to passwd and group (as PasswdGroup writes them) the
// host's entries for uids and gids, the ids the program switched to while
// traced (manifest UIDs, GIDs): a server started as root that names its
// workers' account (Apache's User, nginx's user) looks it up by name. The
// host's entries come from passwdFile and groupFile, without passwords; an
// id already present is kept as it is, and an id the host does not name is
// returned as a warning.
func AddHostIDs(passwd, group, passwdFile, groupFile string, uids, gids []int) (string, string, []string) {
	byID := func(file string, idField int) map[int][]string {
		m := map[int][]string{}
		data, _ := os.ReadFile(file)
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) <= idField || strings.HasPrefix(line, "#") {
				continue
			}
			if id, err := strconv.Atoi(f[idField]); err == nil {
				if _, dup := m[id]; !dup {
					m[id] = f
				}
			}
		}
		return m
	}
	has := func(db string, id int) bool {
		for _, line := range strings.Split(db, "\n") {
			if f := strings.Split(line, ":"); len(f) > 2 && f[2] == strconv.Itoa(id) {
				return true
			}
		}
		return false
	}
	hostPw, hostGr := byID(passwdFile, 2), byID(groupFile, 2)
	var warn []string
	for _, id := range uids {
		if has(passwd, id) {
			continue
		}
		f, ok := hostPw[id]
		if !ok || len(f) < 7 {
			warn = append(warn, fmt.Sprintf("uid %d: the program switched to it, but the host's /etc/passwd does not name it", id))
			continue
		}
		passwd += fmt.Sprintf("%s:x:%s:%s:%s:%s:%s\n", f[0], f[2], f[3], f[4], f[5], f[6])
		if gid, err := strconv.Atoi(f[3]); err == nil {
			gids = append(gids, gid)
		}
	}
	for _, id := range gids {
		if has(group, id) {
			continue
		}
		f, ok := hostGr[id]
		if !ok {
			warn = append(warn, fmt.Sprintf("gid %d: the program switched to it, but the host's /etc/group does not name it", id))
			continue
		}
		group += fmt.Sprintf("%s:x:%d:\n", f[0], id)
	}
	return passwd, group, warn
}

// Hosts returns /etc/hosts naming localhost and hostname.
func Hosts(hostname string) string {
	return "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
}

// checkProgram reports whether the program at p (symlinks followed inside
// the archive) is a regular file in it.
func (b *builder) checkProgram(p string) error {
	if p == "" || !path.IsAbs(p) {
		return fmt.Errorf("the program path %q in the init config is not absolute", p)
	}
	cur := path.Clean(p)
	for i := 0; i < maxLinks; i++ {
		real, ok := b.lookup(cur)
		if !ok {
			return fmt.Errorf("the program %s is not in the initramfs: is it in the manifest's closure, or was it excluded?", p)
		}
		n := b.nodes[real]
		switch n.hdr.Type() {
		case TypeReg:
			if n.hdr.Mode&0o111 == 0 {
				return fmt.Errorf("the program %s is not executable (mode %04o)", p, n.hdr.Mode&0o7777)
			}
			return nil
		case TypeSymlink:
			t := n.hdr.Linkname
			if !path.IsAbs(t) {
				t = path.Join(path.Dir(real), t)
			}
			cur = t
		default:
			return fmt.Errorf("the program %s is not a regular file in the initramfs", p)
		}
	}
	return fmt.Errorf("the program %s: too many levels of symbolic links", p)
}

// lookup resolves directory symlinks of p among the nodes and reports
// whether p is one.
func (b *builder) lookup(p string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i := 0; i < len(parts); i++ {
		next := path.Join(cur, parts[i])
		n, ok := b.nodes[next]
		if !ok {
			if i < len(parts)-1 {
				// A parent directory added later by addParents.
				cur = next
				continue
			}
			return "", false
		}
		if i < len(parts)-1 && n.hdr.Type() == TypeSymlink {
			t := n.hdr.Linkname
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			return b.lookup(path.Join(append([]string{t}, parts[i+1:]...)...))
		}
		cur = next
	}
	return cur, true
}

// addParents adds every missing parent directory as a 0755 root directory.
func (b *builder) addParents() error {
	paths := make([]string, 0, len(b.nodes))
	for p := range b.nodes {
		paths = append(paths, p)
	}
	for _, p := range paths {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			n, ok := b.nodes[d]
			if !ok {
				b.nodes[d] = &node{hdr: Header{Name: d, Mode: TypeDir | 0o755, Mtime: b.mtime}, kind: KindDir}
				continue
			}
			if n.hdr.Type() != TypeDir {
				return fmt.Errorf("%s is in the initramfs as a %s, but %s needs it to be a directory", d, typeName(n.hdr.Type()), p)
			}
		}
	}
	return nil
}

func typeName(t uint32) string {
	switch t {
	case TypeReg:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return "unknown"
}

// write writes the archive atomically and fills the report.
func (b *builder) write(ctx context.Context, out, method string) (err error) {
	paths := make([]string, 0, len(b.nodes))
	for p := range b.nodes {
		paths = append(paths, p)
	}
	// Sorted paths put every directory before its contents.
	sort.Strings(paths)

	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	sum := sha256.New()
	counted := &countWriter{w: io.MultiWriter(tmp, sum)}
	zw, err := compressor(ctx, method, counted)
	if err != nil {
		return err
	}
	cw := NewWriter(zw)
	writeErr := func() error {
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := b.nodes[p]
			h := n.hdr
			h.Name = strings.TrimPrefix(p, "/")
			if err := cw.WriteHeader(&h); err != nil {
				return err
			}
			switch {
			case n.data != nil:
				if _, err := cw.Write(n.data); err != nil {
					return err
				}
			case n.source != "" && h.Type() == TypeReg:
				if err := copyFile(cw, n.dataFile(), h.Size); err != nil {
					return err
				}
			}
			b.report.Files = append(b.report.Files, fileReport(p, n))
			if h.Type() == TypeReg {
				b.report.FileBytes += h.Size
			}
		}
		return cw.Close()
	}()
	closeErr := zw.Close()
	if closeErr != nil {
		// A compressor that failed makes writes fail too; its own error
		// says why.
		return closeErr
	}
	if writeErr != nil {
		return writeErr
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	b.report.UncompressedBytes = cw.Len()
	b.report.CompressedBytes = counted.n
	b.report.SHA256 = hex.EncodeToString(sum.Sum(nil))
	b.sortReport()
	return nil
}

// sortReport puts the report's lists in order, without repeats.
func (b *builder) sortReport() {
	slices.SortFunc(b.report.Dropped, func(x, y Dropped) int { return strings.Compare(x.Path, y.Path) })
	b.report.Dropped = slices.Compact(b.report.Dropped)
	slices.Sort(b.report.Warnings)
	b.report.Warnings = slices.Compact(b.report.Warnings)
}

func fileReport(p string, n *node) FileReport {
	h := n.hdr
	r := FileReport{
		Path: p, Kind: n.kind, Type: typeName(h.Type()),
		Mode: fmt.Sprintf("%04o", h.Mode&0o7777), Uid: h.Uid, Gid: h.Gid,
		Link: h.Linkname,
	}
	switch h.Type() {
	case TypeReg:
		r.Bytes = h.Size
		r.Source = n.source
	case TypeSymlink:
		r.Bytes = int64(len(h.Linkname))
	case TypeChar, TypeBlock:
		r.Device = fmt.Sprintf("%d:%d", h.RdevMajor, h.RdevMinor)
	}
	return r
}

// copyFile copies exactly size bytes of the host file src to w.
func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("copying %s: it shrank from %d to %d bytes during the build", src, size, n)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
