// Package baseline fetches the kernel that bespoke's kernels are compared
// with: Debian's cloud kernel for Linux 6.12, as a user of a Debian cloud
// image runs it. The package is downloaded with apt-get download into
// bespoke's cache and unpacked there; nothing is installed on the host.
//
// Debian's cloud kernel builds its virtio disk and network drivers, erofs
// and overlayfs as modules, so that it cannot mount an image's root by
// itself: Initramfs writes a small initramfs with the guest init and the
// modules it loads before it switches to the image's root
// (protocol.Stage0File).
package baseline

import (
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/initramfs"
)

// packageRe matches the names of Debian's cloud kernel packages for 6.12
// (unsigned: the same kernel as the signed one, without the signature
// wrapper, which QEMU's direct boot ignores).
var packageRe = regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb12-cloud-amd64-unsigned$`)

// Modules are the modules an image's boot needs from the cloud kernel on
// QEMU's -M pc: the root disk and its filesystem, the init's overlay, the
// network. The kernel has virtio-pci, ext4 and tmpfs built in.
var Modules = []string{"virtio_blk", "erofs", "overlay", "virtio_net"}

// Kernel is an unpacked cloud kernel package.
type Kernel struct {
	Package string `json:"package"`
	Version string `json:"version"` // the kernel release, "6.12.118+deb12-cloud-amd64"
	Dir     string `json:"dir"`     // where the package is unpacked
	Vmlinuz string `json:"vmlinuz"`
	Config  string `json:"config"`
	// SystemMap names the kernel's functions (the cost model's).
	SystemMap string `json:"system_map"`
	// ModulesDir is lib/modules/VERSION.
	ModulesDir   string `json:"modules_dir"`
	VmlinuzBytes int64  `json:"vmlinuz_bytes"`
	ModulesBytes int64  `json:"modules_bytes"` // every module the package ships
}

// Fetch returns the newest cloud kernel package apt knows, from
// cacheDir/baseline when it was fetched before (no network needed), else
// downloaded with apt-get download and unpacked with dpkg-deb.
func Fetch(ctx context.Context, cacheDir string, log io.Writer) (*Kernel, error) {
	if log == nil {
		log = io.Discard
	}
	root := filepath.Join(cacheDir, "baseline")
	pkg, err := newestPackage(ctx)
	if err != nil {
		// Offline with an earlier download: use it.
		if k, kerr := cached(root, ""); kerr == nil {
			fmt.Fprintf(log, "baseline: %v; using %s from the cache\n", err, k.Package)
			return k, nil
		}
		return nil, err
	}
	if k, err := cached(root, pkg); err == nil {
		return k, nil
	}
	fmt.Fprintf(log, "baseline: fetching %s with apt-get download into %s ...\n", pkg, root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(root, ".fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("fetching Debian's cloud kernel: apt-get download %s: %v: %s(the baseline needs Debian's package mirror once; later runs use the cache)", pkg, err, tail(out))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return nil, fmt.Errorf("fetching %s: apt-get download left %d .deb files", pkg, len(debs))
	}
	unpacked := filepath.Join(tmp, "unpacked")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], unpacked).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("unpacking %s: dpkg-deb -x: %v: %s", debs[0], err, tail(out))
	}
	if err := os.Rename(unpacked, filepath.Join(root, pkg)); err != nil {
		return nil, err
	}
	return cached(root, pkg)
}

// newestPackage returns the newest cloud kernel package for 6.12 in
// apt's lists.
func newestPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "search", "--names-only", `^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$`).Output()
	if err != nil {
		return "", fmt.Errorf("finding Debian's cloud kernel package: apt-cache search: %v", err)
	}
	best, bestN := "", -1
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if m := packageRe.FindStringSubmatch(name); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > bestN {
				best, bestN = name, n
			}
		}
	}
	if best == "" {
		return "", errors.New("no Debian cloud kernel package for Linux 6.12 (linux-image-6.12.*+deb12-cloud-amd64-unsigned) in apt's lists: run apt-get update (bookworm-security carries it)")
	}
	return best, nil
}

// cached returns the unpacked package pkg below root ("": the newest
// there).
func cached(root, pkg string) (*Kernel, error) {
	if pkg == "" {
		dirs, _ := filepath.Glob(filepath.Join(root, "linux-image-*"))
		slices.SortFunc(dirs, func(a, b string) int { return cmp.Compare(packageN(b), packageN(a)) })
		if len(dirs) == 0 {
			return nil, errors.New("no cloud kernel in the cache")
		}
		pkg = filepath.Base(dirs[0])
	}
	dir := filepath.Join(root, pkg)
	vmlinuz, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return nil, fmt.Errorf("%s: no boot/vmlinuz-*", dir)
	}
	version := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	k := &Kernel{Package: pkg, Version: version, Dir: dir, Vmlinuz: vmlinuz[0],
		Config:     filepath.Join(dir, "boot", "config-"+version),
		SystemMap:  filepath.Join(dir, "boot", "System.map-"+version),
		ModulesDir: filepath.Join(dir, "lib", "modules", version)}
	fi, err := os.Stat(k.Vmlinuz)
	if err != nil {
		return nil, err
	}
	k.VmlinuzBytes = fi.Size()
	err = filepath.WalkDir(k.ModulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".ko.xz") || strings.HasSuffix(p, ".ko") {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			k.ModulesBytes += fi.Size()
		}
		return nil
	})
	return k, err
}

func packageN(dir string) int {
	m := packageRe.FindStringSubmatch(filepath.Base(dir))
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// ModulePaths returns the module files for names and everything they
// depend on (their .modinfo's depends=), each after what it depends on.
func (k *Kernel) ModulePaths(names []string) ([]string, error) {
	files := map[string]string{} // module name -> path
	err := filepath.WalkDir(k.ModulesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if base, ok := strings.CutSuffix(d.Name(), ".ko.xz"); ok {
			files[strings.ReplaceAll(base, "-", "_")] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, from string) error
	visit = func(name, from string) error {
		name = strings.ReplaceAll(name, "-", "_")
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s: a dependency cycle", name)
		case 2:
			return nil
		}
		p, ok := files[name]
		if !ok {
			return fmt.Errorf("module %s (needed by %s) is not in %s: is it built in? (check %s)", name, from, k.ModulesDir, k.Config)
		}
		state[name] = 1
		deps, err := dependsOf(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(n, "the image's boot"); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// dependsOf returns a compressed module's depends= list, read from its
// .modinfo section (xz -dc: Go has no xz reader).
func dependsOf(path string) ([]string, error) {
	out, err := exec.Command("xz", "-dc", path).Output()
	if err != nil {
		return nil, fmt.Errorf("reading module %s: xz -dc: %w (install xz-utils)", path, err)
	}
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s has no .modinfo", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// Initramfs writes to out an uncompressed initramfs holding the guest
// init as /init and the modules (in load order) under /lib/modules, with
// protocol.Stage0File listing them: the init loads them, mounts the
// image's erofs root from the first virtio disk and switches to it.
func Initramfs(init string, modules []string, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := initramfs.NewWriter(f)
	file := func(name string, mode uint32, data []byte) error {
		if err := w.WriteHeader(&initramfs.Header{Name: name, Mode: initramfs.TypeReg | mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	for _, d := range []string{"dev", "lib", "lib/modules", strings.TrimPrefix(protocol.Stage0Root, "/")} {
		if err := w.WriteHeader(&initramfs.Header{Name: d, Mode: initramfs.TypeDir | 0o755}); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(init)
	if err != nil {
		return fmt.Errorf("reading the guest init: %w", err)
	}
	if err := file("init", 0o755, b); err != nil {
		return err
	}
	var list []string
	for i, m := range modules {
		b, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("lib/modules/%02d-%s", i, filepath.Base(m))
		if err := file(name, 0o644, b); err != nil {
			return err
		}
		list = append(list, "/"+name)
	}
	if err := file(strings.TrimPrefix(protocol.Stage0File, "/"), 0o644, []byte(strings.Join(list, "\n")+"\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndex(s, "\n"); i >= 0 && len(s) > 400 {
		s = s[i+1:]
	}
	if s != "" {
		s += " "
	}
	return s
}
