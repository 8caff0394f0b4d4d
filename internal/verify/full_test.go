package verify_test

// Full tier: verify boots real images under QEMU, plants faults in copies
// of an image and checks that verify names and --fix repairs them.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/atomicdir"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/initramfs"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/kconfig"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/manifest"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/testkernel"
	"github.com/bespoke-os/bespoke/internal/verify"
	"github.com/bespoke-os/bespoke/internal/vm"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// redisUnix builds Redis listening on TCP and on a Unix socket, with the
// shared test kernel (its spec asks for testkernel.Enable, CONFIG_UNIX
// among them: a cache hit after internal/image's tests).
func redisUnix(t *testing.T) string {
	testenv.Command(t, "qemu-system-x86_64")
	testenv.Command(t, "redis-server")
	testenv.File(t, ksrc.DefaultSource)
	sp, err := spec.Parse(filepath.Join(t.TempDir(), "bespoke.yaml"), []byte(`
name: redis-unix
cmd: redis-server --port {port} --unixsocket /tmp/redis.sock --save '' --appendonly no --protected-mode no --bind 0.0.0.0
ports: [6379]
ready: tcp:6379
workload: redis-benchmark -h {host} -p {port} -q -n 1000 -c 4 -t set,get
workload_timeout: 2m
`))
	if err != nil {
		t.Fatal(err)
	}
	sp.Kernel.Enable = testkernel.EnableFor(sp.Target)
	out := filepath.Join(t.TempDir(), "redis-unix.image")
	if _, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, Progress: testWriter{t}}); err != nil {
		t.Fatal(err)
	}
	return out
}

func copyImage(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// deleteFile rewrites the image's root without the entry at p.
func deleteFile(t *testing.T, dir, p string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, image.RootFile)); err == nil {
		deleteErofsFile(t, dir, p)
		return
	}
	archive := filepath.Join(dir, image.InitramfsFile)
	cpio := filepath.Join(t.TempDir(), "initramfs.cpio")
	f, err := os.Create(cpio)
	if err != nil {
		t.Fatal(err)
	}
	w := initramfs.NewWriter(f)
	found := false
	err = initramfs.Walk(context.Background(), archive, func(h *initramfs.Header, r io.Reader) error {
		if "/"+h.Name == p {
			found = true
			return nil
		}
		if err := w.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.Copy(w, r)
		return err
	})
	if err == nil {
		err = w.Close()
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("%s is not in the image's initramfs", p)
	}
	in, err := os.Open(cpio)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	xzOut, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer xzOut.Close()
	xz := exec.Command("xz", initramfs.XZArgs...)
	var stderr strings.Builder
	xz.Stdin, xz.Stdout, xz.Stderr = in, xzOut, &stderr
	if err := xz.Run(); err != nil {
		t.Fatalf("xz: %v: %s", err, stderr.String())
	}
}

// plantedSizes records a planted fault's files in the image's report, as
// a build that made them would: verify refuses an image whose kernel or
// root is not the size its report says (a damaged image).
func plantedSizes(t *testing.T, dir string) {
	t.Helper()
	rep, err := image.ReadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	rep.KernelBytes = size(image.KernelFile)
	rep.InitramfsBytes = max(size(image.RootFile), size(image.InitramfsFile))
	rep.TotalBytes = rep.KernelBytes + rep.InitramfsBytes
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, image.ReportFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// deleteErofsFile makes the image's erofs root again without p:
// extracted with its owners, the file removed, mkfs.erofs as bespoke
// runs it.
func deleteErofsFile(t *testing.T, dir, p string) {
	t.Helper()
	root := filepath.Join(dir, image.RootFile)
	tree := filepath.Join(t.TempDir(), "tree")
	if out, err := exec.Command("fsck.erofs", "--extract="+tree, "--preserve", root).CombinedOutput(); err != nil {
		t.Fatalf("fsck.erofs --extract: %v: %s", err, out)
	}
	if err := os.Remove(filepath.Join(tree, p)); err != nil {
		t.Fatalf("%s is not in the image's root: %v", p, err)
	}
	args := append(append([]string{"--quiet"}, initramfs.ErofsArgs("")...), "-T0", root+".new", tree)
	if out, err := exec.Command("mkfs.erofs", args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v: %s", err, out)
	}
	if err := os.Rename(root+".new", root); err != nil {
		t.Fatal(err)
	}
}

// disableOption rebuilds the image's kernel from its config without sym.
func disableOption(t *testing.T, dir, sym string) {
	t.Helper()
	ctx := context.Background()
	cache, tree := testkernel.Tree(t)
	base, err := os.ReadFile(filepath.Join(dir, image.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	res, err := kconfig.Generate(ctx, kconfig.Options{Tree: tree, Base: base, Disable: []string{sym}, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "kernel")
	start := time.Now()
	kr, err := kbuild.Build(ctx, kbuild.Options{Tree: tree, Config: res.Data, OutDir: out, CacheDir: cache, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	testkernel.Log(t, "the shared test kernel without CONFIG_"+sym, kr.Meta, time.Since(start))
	for src, dst := range map[string]string{"bzImage": image.KernelFile, ".config": image.ConfigFile} {
		if err := atomicdir.CopyFile(filepath.Join(out, src), filepath.Join(dir, dst)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyPlantedFaults(t *testing.T) {
	good := redisUnix(t)
	ctx := context.Background()

	res, err := verify.Run(ctx, verify.Options{ImageDir: good, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("verify of the image as built: %v", err)
	}
	if !res.Passed || len(res.Rounds) != 1 || res.Rounds[0].Workload == nil || res.Rounds[0].ExitCode != 0 {
		t.Fatalf("verify of the image as built: %+v, want one passing round with a clean stop", res)
	}
	onlyLogged(t, res.Rounds[0].Findings)

	// A needed library deleted from one copy.
	const lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
	noLib := copyImage(t, good)
	deleteFile(t, noLib, lib)
	plantedSizes(t, noLib)
	// CONFIG_UNIX disabled in another.
	noUnix := copyImage(t, good)
	disableOption(t, noUnix, "UNIX")
	plantedSizes(t, noUnix)

	// The allowlist of a third without epoll_wait, enforced: redis's event
	// loop gets ENOSYS from it (and redis stops: "aeApiPoll").
	noEpoll := copyImage(t, good)
	img, err := vm.LoadImage(noEpoll)
	if err != nil {
		t.Fatal(err)
	}
	if img.Seccomp == nil || !slices.Contains(img.Seccomp.Allow, "epoll_wait") {
		t.Fatalf("the image's seccomp filter %+v does not allow epoll_wait", img.Seccomp)
	}
	img.Seccomp.Mode = spec.SeccompEnforce
	img.Seccomp.Allow = slices.DeleteFunc(img.Seccomp.Allow, func(s string) bool { return s == "epoll_wait" })
	if err := img.Write(noEpoll); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, dir, kind string
		fixed           func(string) bool
	}{
		{"missing library", noLib, verify.MissingFile, func(f string) bool { return strings.HasSuffix(f, "/libssl.so.3") }},
		{"missing option", noUnix, verify.MissingSocket, func(f string) bool { return f == "UNIX" }},
		{"seccomp denial", noEpoll, verify.SeccompDenial, func(f string) bool { return f == "epoll_wait" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := verify.Run(ctx, verify.Options{ImageDir: tc.dir, Progress: testWriter{t}})
			if err == nil || res == nil || res.Passed {
				t.Fatalf("verify of the faulty image passed (%v, %+v), want a failure", err, res)
			}
			if !slices.ContainsFunc(res.Rounds[0].Findings, func(f verify.Finding) bool {
				return f.Kind == tc.kind && (tc.fixed(f.Include) || slices.ContainsFunc(f.Enable, tc.fixed) || tc.fixed(f.Allow))
			}) {
				t.Fatalf("findings %v do not name the fault (%s)", res.Rounds[0].Findings, tc.kind)
			}
			res, err = verify.Run(ctx, verify.Options{ImageDir: tc.dir, Fix: true, MaxRounds: 3, Progress: testWriter{t}})
			if err != nil {
				t.Fatalf("verify --fix: %v", err)
			}
			// A round that passes with syscalls the seccomp filter let
			// through (log) is fixed too, and checked again.
			if !res.Passed || len(res.Rounds) < 2 || !slices.ContainsFunc(res.Rounds[0].Fixed, tc.fixed) || !res.Rounds[1].Passed {
				t.Fatalf("verify --fix: %+v, want a fix in round 1 and a pass in round 2", res)
			}
			fixes, err := image.ReadFixes(tc.dir)
			if err != nil || fixes.Empty() {
				t.Errorf("fixes.json after --fix: %+v, %v; want the fix recorded", fixes, err)
			}
		})
	}
	// The same allowlist in log mode: epoll_wait runs, redis serves, and
	// verify passes and names it.
	logged := copyImage(t, good)
	img.Seccomp.Mode = spec.SeccompLog
	if err := img.Write(logged); err != nil {
		t.Fatal(err)
	}
	res, err = verify.Run(ctx, verify.Options{ImageDir: logged, Progress: testWriter{t}})
	if err != nil || !res.Passed {
		t.Fatalf("verify in log mode: %v, %+v; want a pass", err, res)
	}
	if f := res.Rounds[0].Findings; !slices.ContainsFunc(f, func(f verify.Finding) bool { return f.Allow == "epoll_wait" }) {
		t.Errorf("verify in log mode found %v, want epoll_wait allowed", f)
	}
	onlyLogged(t, res.Rounds[0].Findings)
	if !strings.Contains(res.Summary(), "seccomp-denial epoll_wait") {
		t.Errorf("summary %q does not name the syscall", res.Summary())
	}
}

// onlyLogged checks that the findings of a passing round are syscalls the
// seccomp filter let through (log mode). The trace is a sample: redis
// in the guest made getpeername in some runs, which it never did on the
// host (most likely its slowlog noting a command slow under TCG).
func onlyLogged(t *testing.T, fs []verify.Finding) {
	t.Helper()
	for _, f := range fs {
		if f.Kind != verify.SeccompDenial || !strings.Contains(f.Evidence, "allowed (seccomp log)") {
			t.Errorf("a passing round found %s", f)
			continue
		}
		t.Logf("logged by the seccomp filter: %s", f)
	}
}

// TestVerifyShakenLibs builds Redis with its programs and libraries
// shaken (--shake-libs static) and one function removed on purpose:
// incrCommand, which the build's workload (SET and GET) never calls. The
// image passes the build's workload; a workload with INCR traps in the
// removed function, verify names it, and --fix restores it.
func TestVerifyShakenLibs(t *testing.T) {
	testenv.Command(t, "qemu-system-x86_64")
	server := testenv.Command(t, "redis-server")
	testenv.File(t, ksrc.DefaultSource)
	real, err := filepath.EvalSymlinks(server)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spec.Parse(filepath.Join(t.TempDir(), "bespoke.yaml"), []byte(`
name: redis-shaken
cmd: redis-server --port {port} --save '' --appendonly no --protected-mode no --bind 0.0.0.0
ports: [6379]
ready: tcp:6379
workload: redis-benchmark -h {host} -p {port} -q -n 1000 -c 4 -t set,get
workload_timeout: 2m
shake_libs: static
shake_remove: ["`+real+`:incrCommand"]
`))
	if err != nil {
		t.Fatal(err)
	}
	sp.Kernel.Enable = testkernel.EnableFor(sp.Target)
	dir := filepath.Join(t.TempDir(), "redis-shaken.image")
	if _, err := image.Build(context.Background(), image.Options{Spec: sp, Out: dir, Progress: testWriter{t}}); err != nil {
		t.Fatalf("building with the libraries shaken: %v", err)
	}
	rep, err := image.ReadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Shake == nil || rep.Shake.RemovedBytes == 0 {
		t.Fatalf("report.json shake: %+v, want removed code", rep.Shake)
	}
	for _, o := range rep.Shake.Objects {
		if strings.HasSuffix(o.Path, "/libc.so.6") && (o.Whole != "" || o.Removed == 0) {
			t.Errorf("libc: %+v, want it shaken", o)
		}
	}
	t.Logf("shaken: %d of %d bytes of code removed, %d functions", rep.Shake.RemovedBytes, rep.Shake.TextBytes, rep.Shake.Removed)

	ctx := context.Background()
	incr := "redis-benchmark -h {host} -p {port} -q -n 200 -c 2 -t set,get,incr"
	res, err := verify.Run(ctx, verify.Options{ImageDir: dir, Workload: incr, NoTrace: true, Progress: testWriter{t}})
	if err == nil || res == nil || res.Passed {
		t.Fatalf("verify with INCR passed (%v, %+v), want a failure", err, res)
	}
	want := real + ":incrCommand"
	if !slices.ContainsFunc(res.Rounds[0].Findings, func(f verify.Finding) bool {
		return f.Kind == verify.RemovedFunction && f.Restore == want && strings.Contains(f.Evidence, "trap int3")
	}) {
		t.Fatalf("findings %v do not name the removed function %s", res.Rounds[0].Findings, want)
	}
	res, err = verify.Run(ctx, verify.Options{ImageDir: dir, Workload: incr, Fix: true, Progress: testWriter{t}})
	if err != nil || !res.Passed || len(res.Rounds) != 2 || !slices.Contains(res.Rounds[0].Fixed, want) {
		t.Fatalf("verify --fix with INCR: %v, %+v; want %s restored in round 1 and a pass in round 2", err, res, want)
	}
	fixes, err := image.ReadFixes(dir)
	if err != nil || len(fixes.ShakeKeep) != 1 || fixes.ShakeKeep[0].What != want {
		t.Errorf("fixes.json after --fix: %+v, %v; want shake_keep %s", fixes, err, want)
	}
	// The spec's own workload still passes on the amended image.
	res, err = verify.Run(ctx, verify.Options{ImageDir: dir, Progress: testWriter{t}})
	if err != nil || !res.Passed {
		t.Fatalf("verify of the amended image: %v, %+v", err, res)
	}
	onlyLogged(t, res.Rounds[0].Findings)
}

// TestVerifyShakeProfile builds Redis with its programs and libraries
// shaken by a profile (--shake-libs profile): only the functions that ran
// while the build traced the workload stay, and the smoke boot restores
// what the guest runs beyond them. The image passes its own workload;
// INCR, which the trace never ran, traps in a removed function, verify
// names it, and --fix restores what INCR needs (with each trapped function
// the removed ones around it: 2 rounds where one at a time took 6-8).
// The smallest image there is: its erofs root is compressed with lzma
// (--compression lzma), and stays so when --fix makes it again.
func TestVerifyShakeProfile(t *testing.T) {
	testenv.Command(t, "qemu-system-x86_64")
	testenv.Command(t, "redis-server")
	testenv.File(t, ksrc.DefaultSource)
	sp, err := spec.Parse(filepath.Join(t.TempDir(), "bespoke.yaml"), []byte(`
name: redis-profile
cmd: redis-server --port {port} --save '' --appendonly no --protected-mode no --bind 0.0.0.0
ports: [6379]
ready: tcp:6379
workload: redis-benchmark -h {host} -p {port} -q -n 1000 -c 4 -t set,get
workload_timeout: 2m
shake_libs: profile
compression: lzma
`))
	if err != nil {
		t.Fatal(err)
	}
	sp.Kernel.Enable = testkernel.EnableFor(sp.Target)
	dir := filepath.Join(t.TempDir(), "redis-profile.image")
	if _, err := image.Build(context.Background(), image.Options{Spec: sp, Out: dir, Progress: testWriter{t}}); err != nil {
		t.Fatalf("building with a profile: %v", err)
	}
	rep, err := image.ReadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	sh := rep.Shake
	if sh == nil || sh.Mode != spec.ShakeProfile || sh.RemovedBytes*2 < sh.TextBytes {
		t.Fatalf("report.json shake: %+v, want more than half the code removed by the profile", sh)
	}
	t.Logf("profile: %d of %d bytes of code removed, %d functions; gadgets %d -> %d; the smoke boot restored %v",
		sh.RemovedBytes, sh.TextBytes, sh.Removed, sh.GadgetsBefore, sh.GadgetsAfter, sh.Restored)
	config, err := os.ReadFile(filepath.Join(dir, image.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(config), "\nCONFIG_EROFS_FS_ZIP_LZMA=y\n") {
		t.Errorf("the kernel's config lacks CONFIG_EROFS_FS_ZIP_LZMA=y, which an lzma root needs")
	}
	erofsLZMA(t, dir)
	m, err := manifest.ReadFile(filepath.Join(dir, image.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.FunctionsRun) == 0 {
		t.Fatalf("the manifest has no functions_run")
	}

	ctx := context.Background()
	res, err := verify.Run(ctx, verify.Options{ImageDir: dir, Progress: testWriter{t}})
	if err != nil || !res.Passed {
		t.Fatalf("verify with the spec's workload: %v, %+v", err, res)
	}
	incr := "redis-benchmark -h {host} -p {port} -q -n 200 -c 2 -t set,get,incr"
	res, err = verify.Run(ctx, verify.Options{ImageDir: dir, Workload: incr, Fix: true, MaxRounds: 15, Progress: testWriter{t}})
	if err != nil || !res.Passed {
		t.Fatalf("verify --fix with INCR: %v, %+v; want a pass", err, res)
	}
	if !slices.ContainsFunc(res.Rounds[0].Findings, func(f verify.Finding) bool {
		return f.Kind == verify.RemovedFunction && strings.HasSuffix(f.Restore, ":incrCommand")
	}) {
		t.Errorf("round 1 found %v, want incrCommand removed", res.Rounds[0].Findings)
	}
	t.Logf("INCR needed %d rounds", len(res.Rounds))
	erofsLZMA(t, dir)
}

// erofsLZMA checks that the image's root is an erofs compressed with lzma
// alone, as its report says: the superblock (at 1024) lists the
// compressions its files use (available_compr_algs at 84, bit 1 for
// lzma, 0 for lz4), which mkfs.erofs sets with the feature COMPR_CFGS
// (bit 1 of feature_incompat at 80).
func erofsLZMA(t *testing.T, dir string) {
	t.Helper()
	rep, err := image.ReadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Initramfs.Format != spec.RootErofs || rep.Initramfs.Compression != "lzma" {
		t.Errorf("report.json root: %s compressed with %q, want erofs with lzma", rep.Initramfs.Format, rep.Initramfs.Compression)
	}
	f, err := os.Open(filepath.Join(dir, image.RootFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 128)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		t.Fatal(err)
	}
	magic, incompat, algs := binary.LittleEndian.Uint32(sb), binary.LittleEndian.Uint32(sb[80:]), binary.LittleEndian.Uint16(sb[84:])
	if magic != 0xe0f5e1e2 || incompat&2 == 0 || algs != 1<<1 {
		t.Errorf("%s: magic %#x, feature_incompat %#x, compressions %#b; want an erofs with lzma alone", image.RootFile, magic, incompat, algs)
	}
}
