package image_test

// Full-tier tests: real traces, a real kernel build, real QEMU boots. The
// redis image is built once, through the whole pipeline, with the options
// of the shared test kernel added to its spec (testkernel.Enable), so that
// its kernel is the one every full-tier test shares (minutes to build
// under a cold cache); the other images reuse it with KernelFrom, since
// their subject is not the kernel config. make e2e-all builds each
// example's own kernel.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bespoke-os/bespoke/internal/bench"
	"github.com/bespoke-os/bespoke/internal/cli"
	"github.com/bespoke-os/bespoke/internal/guestinit/protocol"
	"github.com/bespoke-os/bespoke/internal/image"
	"github.com/bespoke-os/bespoke/internal/kbuild"
	"github.com/bespoke-os/bespoke/internal/ksrc"
	"github.com/bespoke-os/bespoke/internal/spec"
	"github.com/bespoke-os/bespoke/internal/testenv"
	"github.com/bespoke-os/bespoke/internal/testkernel"
	"github.com/bespoke-os/bespoke/internal/vm"
)

var redis struct {
	once sync.Once
	dir  string
	rep  *image.Report
	err  error
}

// redisImage builds examples/redis once for the whole package.
func redisImage(t *testing.T) (string, *image.Report) {
	t.Helper()
	return redisImageB(t)
}

func redisImageB(t testing.TB) (string, *image.Report) {
	t.Helper()
	testenv.Command(t, "qemu-system-x86_64")
	testenv.Command(t, "redis-server")
	testenv.File(t, ksrc.DefaultSource)
	redis.once.Do(func() {
		sp, err := redisSpec(vm.TargetMicrovm)
		if err != nil {
			redis.err = err
			return
		}
		dir, err := os.MkdirTemp("", "bespoke-e2e-redis-")
		if err != nil {
			redis.err = err
			return
		}
		redis.dir = filepath.Join(dir, "redis.image")
		redis.rep, redis.err = image.Build(context.Background(), image.Options{
			Spec:     sp,
			Out:      redis.dir,
			Progress: testWriter{t},
		})
	})
	if redis.err != nil {
		t.Fatalf("building the redis image: %v", redis.err)
	}
	return redis.dir, redis.rep
}

// redisSpec is the redis example for target with the shared test
// kernel's options (testkernel.EnableFor), so that its kernel is the
// shared one of target.
func redisSpec(target string) (*spec.Spec, error) {
	sp, err := spec.Load("../../examples/redis/bespoke.yaml")
	if err != nil {
		return nil, err
	}
	if _, err := (spec.Flags{Target: target}).Override(sp); err != nil {
		return nil, err
	}
	sp.Kernel.Enable = append(sp.Kernel.Enable, testkernel.EnableFor(target)...)
	return sp, nil
}

// redisVariant builds the redis example for target, changed by edit
// (when not nil), through the whole pipeline, after the redis image: its
// kernel continues the shared kernel's build dir. The log names the
// kernel (what) and what it cost.
func redisVariant(t *testing.T, target, what string, edit func(*spec.Spec)) (string, *image.Report) {
	t.Helper()
	redisImage(t)
	sp, err := redisSpec(target)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(sp)
	}
	out := filepath.Join(t.TempDir(), sp.Name+".image")
	start := time.Now()
	rep, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	testkernel.Log(t, what, *rep.Kernel, time.Since(start))
	return out, rep
}

func TestMain(m *testing.M) {
	code := m.Run()
	if redis.dir != "" {
		os.RemoveAll(filepath.Dir(redis.dir))
	}
	for _, a := range appImages.built {
		os.RemoveAll(filepath.Dir(a.dir))
	}
	os.Exit(code)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestRedisImage(t *testing.T) {
	dir, rep := redisImage(t)
	if rep.Initramfs == nil || rep.Initramfs.Format != spec.RootErofs {
		t.Errorf("the redis image's root: %+v, want an erofs disk (the default)", rep.Initramfs)
	}
	for _, f := range []string{image.KernelFile, image.VmlinuxFile, image.RootFile, image.ConfigFile,
		image.ManifestFile, image.ReportFile, image.BuildLogFile, vm.ImageFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("image lacks %s: %v", f, err)
		}
	}
	if rep.Workload == nil || rep.Workload.ExitCode != 0 {
		t.Fatalf("the smoke boot's workload did not pass: %+v", rep.Workload)
	}
	if rep.Boot.StopExitCode == nil || *rep.Boot.StopExitCode != 0 {
		t.Errorf("redis did not shut down cleanly after SIGTERM: %+v", rep.Boot)
	}
	if !strings.Contains(rep.Workload.Output, "SET") || !strings.Contains(rep.Workload.Output, "GET") {
		t.Errorf("redis-benchmark output lacks SET/GET results:\n%s", rep.Workload.Output)
	}
	t.Logf("redis image: kernel %d B (%d =y), initramfs %d B, total %d B; boot /init %.2fs (guest %.2fs), ready %.2fs",
		rep.KernelBytes, rep.KernelSymbols, rep.InitramfsBytes, rep.TotalBytes, rep.Boot.InitHost, rep.Boot.InitGuest, rep.Boot.ReadyHost)
	// Its kernel is the shared one: the redis example's options are among
	// testkernel.Enable. Were they not, every run would build one more
	// kernel.
	if k := testkernel.Build(t, vm.TargetMicrovm); k.Meta.Key != rep.Kernel.Key {
		t.Errorf("the redis image's kernel %s is not the shared test kernel %s: add what the redis example asks for (bespoke features) to testkernel.Enable",
			rep.Kernel.Key, k.Meta.Key)
	}

	// Boot it again and talk to redis through the forwarded port.
	var got string
	res, err := vm.Run(context.Background(), vm.Config{
		ImageDir: dir,
		Timeout:  3 * time.Minute,
		Console:  testWriter{t},
		OnReady: func(ctx context.Context, ports map[int]int) error {
			port := fmt.Sprint(ports[6379])
			if out, err := exec.CommandContext(ctx, "redis-cli", "-p", port, "set", "k", "v").CombinedOutput(); err != nil {
				return fmt.Errorf("redis-cli set: %v: %s", err, out)
			}
			out, err := exec.CommandContext(ctx, "redis-cli", "-p", port, "get", "k").CombinedOutput()
			if err != nil {
				return fmt.Errorf("redis-cli get: %v: %s", err, out)
			}
			got = strings.TrimSpace(string(out))
			// The guest's clock is the host's: the init set it at boot.
			// Checked at rest and after a load.
			if err := checkGuestClock(ctx, t, port); err != nil {
				return err
			}
			if out, err := exec.CommandContext(ctx, "redis-benchmark", "-p", port, "-q", "-n", "5000", "-c", "8", "-t", "set,get").CombinedOutput(); err != nil {
				return fmt.Errorf("redis-benchmark: %v: %s", err, out)
			}
			return checkGuestClock(ctx, t, port)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != "v" {
		t.Errorf("redis-cli get k = %q, want v", got)
	}
	if !res.Stopped {
		t.Errorf("the VM ended by itself (exit %d), want it stopped after the check", res.ExitCode)
	}
	// Redis ran under the seccomp filter the build made from its trace
	// (log, the default for a program with ports). What it made outside
	// the list ran, and is reported (seen: getpeername in some runs,
	// which redis never made on the host; most likely its slowlog noting
	// a command slow under TCG).
	if sc := rep.Seccomp; sc == nil || sc.Mode != spec.SeccompLog || !slices.Contains(sc.Allow, "epoll_wait") || slices.Contains(sc.Allow, "io_uring_setup") {
		t.Errorf("the image's seccomp filter: %+v, want log mode, epoll_wait allowed, io_uring_setup not", sc)
	}
	for _, e := range append(slices.Clone(rep.Boot.Seccomp), res.Seccomp...) {
		if e.Action != "allowed" {
			t.Errorf("seccomp in log mode: %s", e)
		}
		t.Logf("seccomp: %s", e)
	}
	if !strings.Contains(strings.Join(res.Command, " "), protocol.ParamSeccomp+"=log:") {
		t.Errorf("the boot's command line lacks the seccomp filter: %q", res.Command)
	}
}

// maxClockOffset is how far the guest's clock may be from the host's.
const maxClockOffset = 50 * time.Millisecond

// checkGuestClock compares redis's TIME (the guest's clock) with the
// host's clock around the request.
func checkGuestClock(ctx context.Context, t *testing.T, port string) error {
	before := time.Now()
	out, err := exec.CommandContext(ctx, "redis-cli", "-p", port, "time").Output()
	after := time.Now()
	if err != nil {
		return fmt.Errorf("redis-cli time: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return fmt.Errorf("redis-cli time: %q, want seconds and microseconds", out)
	}
	sec, err1 := strconv.ParseInt(f[0], 10, 64)
	usec, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("redis-cli time: %q, want seconds and microseconds", out)
	}
	guest := time.Unix(sec, usec*1000)
	offset := time.Duration(0)
	switch {
	case guest.Before(before):
		offset = guest.Sub(before)
	case guest.After(after):
		offset = guest.Sub(after)
	}
	t.Logf("guest clock: %v from the host's (request round trip %v)", offset, after.Sub(before))
	if offset < -maxClockOffset || offset > maxClockOffset {
		return fmt.Errorf("the guest's clock is %v from the host's, want within %v", offset, maxClockOffset)
	}
	return nil
}

// TestRedisPC: the redis example with --target qemu-pc: its kernel is
// configured for -M pc (virtio over PCI, from the qemu-pc base), and the
// image boots there and passes its workload through virtio-net-pci. Its
// kernel continues the shared qemu-microvm kernel's build dir, from which
// it differs in the virtio-mmio options alone (testkernel.EnableFor).
func TestRedisPC(t *testing.T) {
	out, rep := redisVariant(t, vm.TargetPC, "the shared qemu-pc test kernel, by the pipeline", nil)
	if rep.Target != vm.TargetPC || rep.Workload == nil || rep.Workload.ExitCode != 0 {
		t.Fatalf("qemu-pc image: target %s, workload %+v; want the workload passed on qemu-pc", rep.Target, rep.Workload)
	}
	if rep.Boot.StopExitCode == nil || *rep.Boot.StopExitCode != 0 {
		t.Errorf("redis did not shut down cleanly on qemu-pc: %+v", rep.Boot)
	}
	cfg, err := os.ReadFile(filepath.Join(out, image.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for sym, want := range map[string]bool{"PCI": true, "VIRTIO_PCI": true, "VIRTIO_MMIO": false} {
		if got := bytes.Contains(cfg, []byte("\nCONFIG_"+sym+"=y\n")); got != want {
			t.Errorf("the qemu-pc kernel's CONFIG_%s=y: %v, want %v", sym, got, want)
		}
	}
	argv, err := vm.Command(vm.Config{ImageDir: out, Accel: vm.AccelTCG})
	if err != nil {
		t.Fatal(err)
	}
	if cmd := vm.ShellQuote(argv); !strings.Contains(cmd, "-M pc ") || !strings.Contains(cmd, "virtio-net-pci") {
		t.Errorf("QEMU command line for the qemu-pc image: %s\nwant -M pc and virtio-net-pci", cmd)
	}
	checkBaseline(t, out)
}

// checkBaseline: bespoke bench --baseline boots the qemu-pc image out on
// Debian's cloud kernel too (fetched once into the cache; its drivers
// loaded from an initramfs by the guest init), runs the workload on both,
// and records each kernel's bytes and boots. A microvm image is refused
// with what to do. (Which kernel is faster is the benchmark's to say, not
// a test's.)
func checkBaseline(t *testing.T, out string) {
	t.Helper()
	testenv.Command(t, "apt-get")
	var stdout, stderr bytes.Buffer
	if code := cli.Main(context.Background(), []string{"bench", out, "--baseline", "--runs", "1"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("bespoke bench --baseline: exit %d\n%s", code, stderr.String())
	}
	t.Logf("bench --baseline:\n%s", stdout.String())
	var res bench.Result
	data, err := os.ReadFile(filepath.Join(out, cli.BenchFile))
	if err != nil || json.Unmarshal(data, &res) != nil || len(res.Kernels) != 2 {
		t.Fatalf("bench.json: %v: %s", err, data)
	}
	img, base := res.Kernels[0], res.Kernels[1]
	if base.Label != "debian-cloud" || base.Bytes < 5<<20 || base.ModulesBytes < 5<<20 || len(base.Ready) != 1 || base.Ready[0] <= 0 || len(base.Seconds) != 1 {
		t.Errorf("the baseline's series: %+v; want Debian's cloud kernel (MBs of vmlinuz and modules), booted to ready, the workload run", base.Kernel)
	}
	if img.Label != "image" || img.ModulesBytes != 0 || len(img.Ready) != 1 || img.Ready[0] <= 0 {
		t.Errorf("the image's series: %+v", img.Kernel)
	}
	micro, _ := redisImage(t)
	stderr.Reset()
	if code := cli.Main(context.Background(), []string{"bench", micro, "--baseline"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--target qemu-pc") {
		t.Errorf("bench --baseline of a microvm image: exit %d, %s; want 2 and --target qemu-pc", code, stderr.String())
	}
}

// TestRunPortForward: bespoke run IMAGE -p HOST:GUEST, as a user types
// it, makes the program in the guest answer on the host's port.
func TestRunPortForward(t *testing.T) {
	dir, _ := redisImage(t)
	host := freePort(t)
	var pong string
	_, stderr := runBespoke(t, []string{"run", dir, "-p", fmt.Sprintf("%d:6379", host), "--timeout", "3m"}, func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) && pong != "PONG" {
			out, _ := exec.Command("redis-cli", "-p", fmt.Sprint(host), "ping").CombinedOutput()
			pong = strings.TrimSpace(string(out))
			time.Sleep(500 * time.Millisecond)
		}
	})
	if pong != "PONG" {
		t.Errorf("redis-cli -p %d ping = %q, want PONG\nstderr:\n%s", host, pong, stderr)
	}
}

// TestRedisKernelCacheHit: building the redis image's kernel config again
// is a cache hit that does not run make.
func TestRedisKernelCacheHit(t *testing.T) {
	dir, _ := redisImage(t)
	cfg, err := os.ReadFile(filepath.Join(dir, image.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	_, tree := testkernel.Tree(t)
	start := time.Now()
	res, err := kbuild.Build(context.Background(), kbuild.Options{Tree: tree, Config: cfg, OutDir: filepath.Join(t.TempDir(), "k"), Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Hit || res.Meta.MakeRun {
		t.Errorf("second build of the redis config: hit %v, make run %v; want a hit without make", res.Hit, res.Meta.MakeRun)
	}
	t.Logf("cache hit in %s", time.Since(start).Round(time.Millisecond))
}

// TestGoHTTPImage builds a static Go server (no shared libraries) into an
// image and fetches a page through bespoke run -p. Under make test it
// reuses the shared kernel (its options, CGROUPS, IPV6 and MPTCP among
// them, are in testkernel.Enable); make e2e-all builds its own.
func TestGoHTTPImage(t *testing.T) {
	kernel := sharedKernelFrom(t)
	bin := filepath.Join(t.TempDir(), "gohttp")
	build := exec.Command("go", "build", "-o", bin, "../../examples/gohttp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build gohttp: %v\n%s", err, out)
	}
	sp, err := spec.FromArgs(spec.Flags{Ready: "tcp:8080"}, []string{bin, "-addr", ":{port}"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "gohttp.image")
	rep, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, KernelFrom: kernel, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Boot == nil || rep.Boot.ReadyBy != "tcp:8080" {
		t.Errorf("smoke boot: %+v, want ready by tcp:8080", rep.Boot)
	}
	host := freePort(t)
	var body string
	_, stderr := runBespoke(t, []string{"run", out, "-p", fmt.Sprintf("%d:8080", host), "--timeout", "3m"}, func() {
		body = fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", host), 2*time.Minute)
	})
	if !strings.Contains(body, "hello from bespoke gohttp on gohttp") {
		t.Errorf("page = %q, want the gohttp greeting with the image's hostname\nstderr:\n%s", body, stderr)
	}
}

// sharedKernelFrom returns the image whose kernel an application test
// reuses: the redis image's, the shared test kernel, under make test;
// none under make e2e-all, which builds each application's own kernel.
func sharedKernelFrom(t *testing.T) string {
	t.Helper()
	if os.Getenv(testenv.E2EAllEnv) != "" {
		t.Log("kernel: the application's own (make e2e-all)")
		return ""
	}
	dir, rep := redisImage(t)
	t.Logf("kernel: the shared qemu-microvm test kernel %s, from the redis image", rep.Kernel.Key)
	return dir
}

// TestExitStatus: a program that exits 3 makes bespoke run exit 3. Its
// image has an initramfs root (--root initramfs), which the shared kernel
// boots too.
func TestExitStatus(t *testing.T) {
	kernel, _ := redisImage(t)
	sp, err := spec.FromArgs(spec.Flags{Name: "exit3", Root: spec.RootInitramfs}, []string{"/bin/sh", "-c", "echo guest-ran; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "exit3.image")
	rep, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, KernelFrom: kernel, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Boot == nil || rep.Boot.ExitCode != 3 {
		t.Errorf("smoke boot: %+v, want exit code 3", rep.Boot)
	}
	if _, err := os.Stat(filepath.Join(out, image.InitramfsFile)); err != nil || rep.Initramfs.Format != spec.RootInitramfs {
		t.Errorf("--root initramfs: %v, format %q; want %s", err, rep.Initramfs.Format, image.InitramfsFile)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", out, "--timeout", "3m"}, nil, &stdout, &stderr)
	if code != 3 {
		t.Errorf("bespoke run exited %d, want 3\nstderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "guest-ran") {
		t.Errorf("console lacks the program's output:\n%s", stdout.String())
	}
}

// TestInitCannotStart: the program's shared libraries are left out, so the
// guest init cannot start it; bespoke run fails fast with the console tail.
func TestInitCannotStart(t *testing.T) {
	kernel, _ := redisImage(t)
	sp, err := spec.FromArgs(spec.Flags{Name: "broken", Exclude: []string{"*.so*"}}, []string{"/bin/sh", "-c", "exit 0"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "broken.image")
	if _, err := image.Build(context.Background(), image.Options{Spec: sp, Out: out, KernelFrom: kernel, NoBoot: true, Progress: testWriter{t}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"run", out, "--timeout", "5m"}, nil, &stdout, &stderr)
	if code == 0 {
		t.Fatalf("bespoke run exited 0 for a program that cannot start\nstderr:\n%s", stderr.String())
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("bespoke run took %s, want a quick failure well before the 5m timeout", d)
	}
	if !strings.Contains(stderr.String(), "/bin/sh") || !strings.Contains(stderr.String(), "console") {
		t.Errorf("the error does not name the program and show the console:\n%s", stderr.String())
	}
}

// TestKernelFromRefusesMissingOptions: reusing a kernel that lacks an
// option the program needs is an error naming the option.
func TestKernelFromRefusesMissingOptions(t *testing.T) {
	kernel, _ := redisImage(t)
	sp, err := spec.FromArgs(spec.Flags{Name: "needs-aio"}, []string{"/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	sp.Kernel.Enable = []string{"AIO"}
	out := filepath.Join(t.TempDir(), "x.image")
	_, err = image.Build(context.Background(), image.Options{Spec: sp, Out: out, KernelFrom: kernel, NoBoot: true, Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "CONFIG_AIO") {
		t.Fatalf("got %v, want an error naming CONFIG_AIO", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed build left %s behind", out)
	}
	kept := filepath.Join(out+".failed", image.BuildLogFile)
	if _, statErr := os.Stat(kept); statErr != nil || !strings.Contains(err.Error(), kept) {
		t.Errorf("the failed build's log: %v; the error %q should name %s", statErr, err, kept)
	}
}

// runBespoke runs the bespoke CLI in-process in the background, calls
// during() once the VM is starting, then cancels the run (as Ctrl-C does).
func runBespoke(t *testing.T, args []string, during func()) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() { done <- cli.Main(ctx, args, nil, &stdout, &stderr) }()
	during()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("bespoke run did not stop within 30s of cancellation")
	}
	return stdout.String(), stderr.String()
}

// fetch GETs url until it answers or the deadline passes.
func fetch(t *testing.T, url string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 {
				return string(body)
			}
			last = fmt.Errorf("status %s, body %q, %v", resp.Status, body, err)
		} else {
			last = err
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("GET %s: no answer within %s: %v", url, within, last)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
