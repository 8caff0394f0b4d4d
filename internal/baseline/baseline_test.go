package baseline

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/initramfs"
)

const testPkg = "linux-image-6.12.0+deb12-cloud-amd64-unsigned"

// testCache returns a cache dir holding testdata as an unpacked package.
func testCache(t *testing.T) string {
	t.Helper()
	cache := t.TempDir()
	dst := filepath.Join(cache, "baseline", testPkg)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", "testdata", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return cache
}

// fakeTools puts scripts named after apt's tools first on $PATH.
func fakeTools(t *testing.T, scripts map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

// TestFetchOffline: without apt (no network, no lists), Fetch says what to
// do; with an earlier download in the cache, it uses that.
func TestFetchOffline(t *testing.T) {
	fakeTools(t, map[string]string{"apt-cache": "echo 'E: no lists' >&2; exit 100"})
	if _, err := Fetch(context.Background(), t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "finding Debian's cloud kernel package") {
		t.Errorf("Fetch without apt and without a cache: %v", err)
	}
	var log bytes.Buffer
	k, err := Fetch(context.Background(), testCache(t), &log)
	if err != nil {
		t.Fatal(err)
	}
	if k.Package != testPkg || k.Version != "6.12.0-test" || k.ModulesBytes == 0 || !strings.Contains(log.String(), "using "+testPkg+" from the cache") {
		t.Errorf("Fetch from the cache: %+v, log %q", k, log.String())
	}
}

// TestFetchDownloadFails: a package apt lists but cannot download is an
// error naming the package and apt-get's message.
func TestFetchDownloadFails(t *testing.T) {
	fakeTools(t, map[string]string{
		"apt-cache": "echo 'linux-image-6.12.9+deb12-cloud-amd64-unsigned - Linux 6.12'; echo 'linux-image-6.12.10+deb12-cloud-amd64-unsigned - Linux 6.12'; echo 'linux-image-6.12.10+deb12-cloud-amd64-unsigned-dbg - no'",
		"apt-get":   "echo 'E: Failed to fetch http://deb.debian.org/...: Temporary failure resolving' >&2; exit 100",
	})
	_, err := Fetch(context.Background(), t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "apt-get download linux-image-6.12.10+deb12-cloud-amd64-unsigned") || !strings.Contains(err.Error(), "Temporary failure resolving") {
		t.Errorf("Fetch with a failing download: %v; want the newest package and apt-get's error", err)
	}
}

// TestModulePaths: dependencies come first, each once; a module the
// package lacks is an error.
func TestModulePaths(t *testing.T) {
	testenvXZ(t)
	k, err := cached(filepath.Join(testCache(t), "baseline"), testPkg)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := k.ModulePaths([]string{"a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	if !slices.Equal(names, []string{"c.ko.xz", "b.ko.xz", "a.ko.xz"}) {
		t.Errorf("ModulePaths(a, c) = %v, want c, b, a", names)
	}
	if _, err := k.ModulePaths([]string{"virtio_blk"}); err == nil || !strings.Contains(err.Error(), "module virtio_blk") {
		t.Errorf("a module the package lacks: %v", err)
	}

	// The initramfs holds the init and the modules in that order, listed
	// in protocol.Stage0File.
	init := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(init, []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "stage0.cpio")
	if err := Initramfs(init, paths, out); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	err = initramfs.Walk(context.Background(), out, func(h *initramfs.Header, data io.Reader) error {
		var b bytes.Buffer
		b.ReadFrom(data)
		files[h.Name] = b.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "/lib/modules/00-c.ko.xz\n/lib/modules/01-b.ko.xz\n/lib/modules/02-a.ko.xz\n"
	if files["init"] != "ELF" || files[strings.TrimPrefix(protocol.Stage0File, "/")] != want {
		t.Errorf("initramfs: init %q, %s %q; want the init and %q", files["init"], protocol.Stage0File, files[strings.TrimPrefix(protocol.Stage0File, "/")], want)
	}
}

func testenvXZ(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Fatal("xz not found: ModulePaths reads .ko.xz modules with it (make deps installs xz-utils)")
	}
}
