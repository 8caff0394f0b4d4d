package datatrees

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bespoke-os/bespoke/internal/manifest"
)

// DpkgInfo is where dpkg keeps each package's file list (NAME.list or
// NAME:ARCH.list).
const DpkgInfo = "/var/lib/dpkg/info"

// packageDirs are where a package's own runtime data and configuration
// live; notPackageData are the parts no program reads at run time
// (documentation, completion, desktop files, the host's service manager's
// files).
var (
	packageDirs    = []string{"/etc/", "/usr/share/"}
	notPackageData = []string{
		"/usr/share/doc/", "/usr/share/doc-base/", "/usr/share/man/", "/usr/share/info/",
		"/usr/share/lintian/", "/usr/share/bug/", "/usr/share/bash-completion/",
		"/usr/share/zsh/", "/usr/share/fish/", "/usr/share/menu/", "/usr/share/applications/",
		"/usr/share/icons/", "/usr/share/pixmaps/", "/usr/share/apport/", "/usr/share/reportbug/",
		// the host's service manager's, not the program's
		"/etc/init.d/", "/etc/default/", "/etc/logrotate.d/", "/etc/systemd/", "/etc/cron.d/",
		"/etc/cron.daily/", "/etc/apparmor.d/", "/etc/ufw/", "/usr/share/apport/",
	}
)

// Package is a Debian package of a program in the image, with the files
// it ships under /etc and /usr/share that the image does not hold
// (report.json's not_in_image).
type Package struct {
	Name string `json:"name"`
	// Programs are the image's programs the package ships.
	Programs []string `json:"programs"`
	// Shipped counts the package's regular files under /etc and
	// /usr/share (documentation left aside).
	Shipped int `json:"shipped"`
	// Missing are those the image does not hold, with their bytes.
	Missing      []string `json:"missing,omitempty"`
	MissingBytes int64    `json:"missing_bytes"`
}

// PackageFiles returns, for each Debian package shipping the program of m
// or a program it exec'ed, the files under /etc and /usr/share the image
// does not hold (inImage reports whether a guest path is in the image).
// Paths are read below root ("" is "/"). Without a dpkg database it
// returns nothing.
func PackageFiles(m *manifest.Manifest, inImage func(string) bool, root string) ([]Package, error) {
	if root == "" {
		root = "/"
	}
	lists, err := os.ReadDir(filepath.Join(root, DpkgInfo))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	programs := []string{m.Program.Resolved}
	for _, e := range m.Execs {
		if e.Result == "found" {
			programs = append(programs, e.Path)
		}
	}
	var out []Package
	for _, l := range lists {
		name, ok := strings.CutSuffix(l.Name(), ".list")
		if !ok {
			continue
		}
		files, err := readList(filepath.Join(root, DpkgInfo, l.Name()))
		if err != nil {
			return nil, err
		}
		var ships []string
		for _, p := range programs {
			if shipped(files, p) && !slices.Contains(ships, p) {
				ships = append(ships, p)
			}
		}
		if len(ships) == 0 {
			continue
		}
		pkg := Package{Name: strings.SplitN(name, ":", 2)[0], Programs: ships}
		for _, f := range files {
			if !packageData(f) {
				continue
			}
			fi, err := os.Lstat(filepath.Join(root, f))
			if err != nil || !fi.Mode().IsRegular() {
				continue // dpkg lists directories and diverted or removed conffiles
			}
			pkg.Shipped++
			if !inImage(f) {
				pkg.Missing = append(pkg.Missing, f)
				pkg.MissingBytes += fi.Size()
			}
		}
		out = append(out, pkg)
	}
	return out, nil
}

// shipped reports whether the list holds p, also through Debian's merged
// /usr (a list may say /bin/x for /usr/bin/x and the reverse).
func shipped(files []string, p string) bool {
	if _, ok := slices.BinarySearch(files, p); ok {
		return true
	}
	alt, ok := strings.CutPrefix(p, "/usr")
	if !ok {
		alt = "/usr" + p
	}
	_, ok = slices.BinarySearch(files, alt)
	return ok
}

func packageData(p string) bool {
	in := false
	for _, d := range packageDirs {
		in = in || strings.HasPrefix(p, d)
	}
	for _, d := range notPackageData {
		if strings.HasPrefix(p, d) {
			return false
		}
	}
	return in
}

// readList returns the sorted paths of a dpkg .list file.
func readList(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "/") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out, sc.Err()
}
