// Package kbuild builds Linux kernels out of tree (make O=DIR) and caches
// them.
//
// A build's cache key covers the source tree's ID, the .config, the
// toolchain's versions and every make variable. The same key again is a
// cache hit: the artifacts are copied out of the result dir and make does
// not run. A new key builds in a work dir of its lineage (same source,
// toolchain and make variables: everything but the config), the one where
// the fewest objects depend on an option that changed (workDirs), so
// Kbuild recompiles only what the change touches. Work dirs never move: Kbuild's tools (objtool) record absolute
// paths, and every object depends on objtool, so a moved or copied build
// dir would recompile everything. ccache, when installed, shares objects
// between work dirs.
//
// Layout under CacheDir/kbuild:
//
//	KEY/                 result: bzImage, vmlinux, .config, System.map,
//	                     build.log, bespoke-build.json; written whole in
//	                     .KEY.new-*, synced to disk, then swapped in (atomicdir)
//	KEY.log              the log of a build of KEY that runs, failed or was interrupted
//	KEY.lock             flock'ed while a process builds KEY; holds its pid
//	work-LINEAGE.N/      a work dir (make O=); N > 0 for configs far apart or builds at once
//	work-LINEAGE.N.lock  flock'ed while a build uses the work dir: make and
//	                     every process it starts inherit the lock, so the dir
//	                     stays locked until the last of them exits
//
// A result dir appears only by a rename after make succeeded and the
// metadata was written, so an interrupted or failed build never counts as
// a hit; a hit whose artifacts do not match the metadata (sizes, section
// sizes, options) is removed and built again. The output directory is
// written next to its final place and swapped in at the end: a failed
// build leaves the previous one intact. make gets SIGKILL when bespoke
// dies.
package kbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bespoke-os/bespoke/internal/cache"
	"github.com/bespoke-os/bespoke/internal/kdce"
	"github.com/bespoke-os/bespoke/internal/ksrc"
)

// Files in a build dir that bespoke writes next to Kbuild's own.
const (
	metaFile     = "bespoke-build.json"   // in a result dir: the build's Meta
	inputFile    = "bespoke-input.config" // in a work dir: the config of its last build
	lastKeyFile  = "bespoke-key"          // in a work dir: the key of its last finished build
	buildingFile = "bespoke-building"     // in a work dir: a build started and did not finish
)

// BuildTimestamp is the fixed KBUILD_BUILD_TIMESTAMP: with it (and the
// fixed user, host and build number) the same key gives the same kernel
// and ccache can share init/version.o.
const BuildTimestamp = "2024-01-01 00:00:00 UTC"

// Options describe one kernel build.
type Options struct {
	Tree     *ksrc.Tree // the kernel source (ksrc.Prepare)
	Config   []byte     // the .config to build; make olddefconfig completes it
	OutDir   string     // where the artifacts go ("" with DryRun)
	CacheDir string     // bespoke's cache ("" means ksrc.CacheDir())
	Jobs     int        // make -j (0 means the number of CPUs)
	// ExtraMake are more make arguments, e.g. "KCFLAGS=-fprofile-use".
	// They are part of the cache key.
	ExtraMake []string
	// CC is the compiler make uses. "" means "ccache gcc" when ccache is
	// installed, else "gcc". A PGO build may pass a wrapper here.
	CC string
	// Prepare, when set, runs in the build dir after the .config is in
	// place and before make, e.g. to put .gcda profiles beside the
	// objects. What it adds must be named in KeyExtra.
	Prepare func(buildDir string) error
	// KeyExtra are more inputs of the cache key (e.g. a profile's hash).
	KeyExtra []string
	// RemoveSyscalls are x86-64 syscall numbers routed to sys_ni_syscall
	// in the build's generated syscall table (they return ENOSYS): part of
	// the cache key, but not of the build dir lineage, since only the
	// dispatcher recompiles.
	RemoveSyscalls []int
	// Env is added to make's environment (K=V), e.g. a compiler wrapper's
	// settings. It is not part of the cache key: what in it changes the
	// output must be named in KeyExtra.
	Env []string

	Progress         io.Writer     // progress and messages; nil: none
	ProgressTerminal bool          // rewrite one line instead of printing lines
	ProgressInterval time.Duration // between lines when not a terminal (15s)
	DryRun           bool          // compute the key and commands, run nothing

	// Toolchain, when set, is used instead of running the tools (tests).
	Toolchain *Toolchain
	// Runner runs the commands; nil means ExecRunner.
	Runner Runner
}

// Result is the outcome of Build.
type Result struct {
	Dir      string   // the output dir (OutDir)
	BuildDir string   // the work dir make ran in (make O=)
	Entry    string   // the cache's result dir for the key (exists once built)
	Hit      bool     // served from the cache, make not run
	Commands []string // the make command lines (run, or to run with DryRun)
	Meta     Meta
}

// Meta is a build's metadata, written as build.json in the output dir.
type Meta struct {
	Key             string    `json:"key"`
	Hit             bool      `json:"cache_hit"`
	MakeRun         bool      `json:"make_run"`
	BuildDir        string    `json:"build_dir"`
	BaseKey         string    `json:"base_key,omitempty"` // finished build the build dir was copied from
	Resumed         bool      `json:"resumed,omitempty"`  // continued an interrupted or failed build
	SourceVersion   string    `json:"source_version"`
	SourceID        string    `json:"source_id"`
	SourceDir       string    `json:"source_dir"`
	Toolchain       Toolchain `json:"toolchain"`
	CC              string    `json:"cc"`
	MakeVars        []string  `json:"make_vars,omitempty"`
	KeyExtra        []string  `json:"key_extra,omitempty"`
	RemovedSyscalls []int     `json:"removed_syscalls,omitempty"`
	Commands        []string  `json:"commands"`
	Jobs            int       `json:"jobs"`
	ObjectsCompiled int       `json:"objects_compiled"`
	MakeSeconds     float64   `json:"make_seconds"`  // make's wall time when the kernel was built
	TotalSeconds    float64   `json:"total_seconds"` // this invocation, copy-out included
	BuiltAt         time.Time `json:"built_at"`
	BzImageBytes    int64     `json:"bzimage_bytes"`
	Vmlinux         Sizes     `json:"vmlinux"`
	EnabledY        int       `json:"enabled_y"`         // CONFIG_X=y lines of the final .config
	Dropped         []string  `json:"dropped,omitempty"` // input settings olddefconfig did not keep
	// GCSections is what the final link's --gc-sections removed, for a
	// kernel linked by bespoke-ld (--kernel-dce).
	GCSections *kdce.Removed `json:"gc_sections,omitempty"`
}

// targets are the make targets of a build (bzImage links vmlinux and
// writes System.map on the way).
var targets = []string{"bzImage"}

// Build builds the kernel opts describe, or copies it out of the cache.
func Build(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Tree == nil {
		return nil, errors.New("building kernel: no kernel source tree")
	}
	if len(opts.Config) == 0 {
		return nil, errors.New("building kernel: empty .config (generate one with 'bespoke config')")
	}
	if opts.OutDir == "" && !opts.DryRun {
		return nil, errors.New("building kernel: no output directory")
	}
	if !opts.DryRun {
		if err := checkOutDir(opts.OutDir); err != nil {
			return nil, err
		}
	}
	if opts.CacheDir == "" {
		d, err := ksrc.CacheDir()
		if err != nil {
			return nil, err
		}
		opts.CacheDir = d
	}
	cacheDir, err := filepath.Abs(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.Runner == nil {
		opts.Runner = ExecRunner
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 15 * time.Second
	}
	if opts.CC == "" {
		opts.CC = "gcc"
		if _, err := exec.LookPath("ccache"); err == nil {
			opts.CC = "ccache gcc"
		}
	}
	opts.RemoveSyscalls = slices.Compact(slices.Sorted(slices.Values(opts.RemoveSyscalls)))
	var tc Toolchain
	if opts.Toolchain != nil {
		tc = *opts.Toolchain
	} else if tc, err = DetectToolchain(ctx); err != nil {
		return nil, fmt.Errorf("building kernel: %w", err)
	}
	in := KeyInput{
		SourceID: opts.Tree.ID, Config: opts.Config, Toolchain: tc, CC: opts.CC,
		MakeVars: opts.ExtraMake, Targets: targets, Extra: opts.KeyExtra, RemoveSyscalls: opts.RemoveSyscalls,
		LinkerScript: ldsRewrite,
	}
	key := Key(in)
	in.Config, in.RemoveSyscalls, in.LinkerScript = nil, nil, ""
	lineage := "work-" + Key(in) // everything but the config
	root := filepath.Join(cacheDir, "kbuild")
	result := filepath.Join(root, key)
	if opts.DryRun {
		work := filepath.Join(root, lineage+".0")
		if ws := workDirs(root, lineage, opts.Config, makefileOptions(opts.Tree.Dir)); len(ws) > 0 && (!ws[0].far() || len(ws) >= MaxWorkDirs) {
			work = ws[0].dir
		}
		res := &Result{Dir: opts.OutDir, BuildDir: work, Entry: result, Commands: commandLines(makeCommands(opts, cacheDir, work, nil)), Meta: Meta{Key: key}}
		if meta, err := readMeta(result); err == nil && checkEntry(result, &meta) == nil {
			res.Hit = true
		}
		return res, nil
	}
	say := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, format+"\n", args...)
		}
	}

	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating kernel build cache: %w", err)
	}
	unlock, err := lockKey(ctx, filepath.Join(root, key+".lock"), say)
	if err != nil {
		return nil, fmt.Errorf("building kernel: %w", err)
	}
	defer unlock()

	if meta, err := readMeta(result); err == nil {
		if err := checkEntry(result, &meta); err != nil {
			say("kernel %s: cache entry %s is damaged (%v): removing it and building again", key, result, err)
			if err := os.RemoveAll(result); err != nil {
				return nil, fmt.Errorf("building kernel: removing damaged cache entry: %w", err)
			}
		} else {
			meta.Hit, meta.MakeRun = true, false
			say("kernel %s: cache hit (%s)", key, result)
			cache.Touch(result) // bespoke cache prune goes least recently used first
			if err := install(opts.OutDir, result, &meta, start); err != nil {
				return nil, err
			}
			return &Result{Dir: opts.OutDir, BuildDir: meta.BuildDir, Entry: result, Hit: true, Commands: meta.Commands, Meta: meta}, nil
		}
	}

	wd, near, workLock, err := acquireWorkDir(root, lineage, opts.Config, makefileOptions(opts.Tree.Dir))
	if err != nil {
		return nil, fmt.Errorf("building kernel: %w", err)
	}
	defer workLock.Close()
	work := wd.dir
	cache.Touch(work)
	cmds := makeCommands(opts, cacheDir, work, say)
	for i := range cmds {
		// make and all it starts hold the lock: if bespoke dies, the dir
		// stays locked until the last of them has exited.
		cmds[i].ExtraFiles = []*os.File{workLock}
	}
	meta := Meta{
		Key: key, MakeRun: true, BuildDir: work, SourceVersion: opts.Tree.Version, SourceID: opts.Tree.ID,
		SourceDir: opts.Tree.Dir, Toolchain: tc, CC: opts.CC, MakeVars: opts.ExtraMake, KeyExtra: opts.KeyExtra,
		RemovedSyscalls: opts.RemoveSyscalls, Commands: commandLines(cmds), Jobs: opts.Jobs,
	}
	if b, err := os.ReadFile(filepath.Join(work, lastKeyFile)); err == nil {
		meta.BaseKey = strings.TrimSpace(string(b))
	}
	if _, err := os.Stat(filepath.Join(work, buildingFile)); err == nil {
		meta.Resumed = true
	}
	switch {
	case wd.dist < 0 && near != nil:
		say("kernel %s: new build dir %s (in the nearest, %s, %d options differ and %d of its %d objects depend on them)",
			key, work, filepath.Base(near.dir), near.dist, near.recompile, near.objects)
	case wd.dist < 0:
		say("kernel %s: new build dir %s", key, work)
	case meta.Resumed:
		say("kernel %s: continuing the unfinished build in %s (%d options differ from it)", key, work, wd.dist)
	default:
		say("kernel %s: rebuilding in %s (%d options differ from its last build; %d of its %d objects depend on them)",
			key, work, wd.dist, wd.recompile, wd.objects)
	}
	for name, body := range map[string][]byte{buildingFile: []byte(key + "\n"), ".config": opts.Config, inputFile: opts.Config} {
		if err := os.WriteFile(filepath.Join(work, name), body, 0o644); err != nil {
			return nil, fmt.Errorf("preparing build dir: %w", err)
		}
	}
	if err := resetSyscalls(work); err != nil {
		return nil, fmt.Errorf("preparing build dir: %w", err)
	}
	if opts.Prepare != nil {
		if err := opts.Prepare(work); err != nil {
			return nil, fmt.Errorf("preparing build dir: %w", err)
		}
	}

	logPath := filepath.Join(root, key+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating build log: %w", err)
	}
	defer logf.Close()
	say("kernel %s: building with -j%d (log: %s)", key, opts.Jobs, logPath)
	prog := newProgress(opts.Progress, opts.ProgressTerminal, opts.ProgressInterval)
	stop := make(chan struct{})
	go prog.run(stop)
	makeStart := time.Now()
	out := io.MultiWriter(logf, prog)
	for _, c := range cmds {
		fmt.Fprintf(logf, "$ %s\n", c)
		if c.Do != nil {
			err = c.Do()
		} else {
			err = opts.Runner(ctx, c, out)
		}
		if err != nil {
			break
		}
	}
	close(stop)
	prog.done()
	logf.Close()
	meta.MakeSeconds = time.Since(makeStart).Seconds()
	meta.ObjectsCompiled = prog.Objects()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("building kernel: interrupted after %s; %s is untouched, the log is %s and the next build continues in %s: %w",
				time.Since(makeStart).Round(time.Second), opts.OutDir, logPath, work, ctx.Err())
		}
		text, _ := os.ReadFile(logPath)
		be := parseFailure(text, opts.Tree.Dir)
		be.Log, be.Err = logPath, err
		return nil, be
	}
	if err := finish(work, &meta, opts.Config); err != nil {
		return nil, err
	}
	if err := saveResult(work, result, logPath, &meta); err != nil {
		return nil, fmt.Errorf("recording build in the cache: %w", err)
	}
	os.Remove(logPath)
	os.WriteFile(filepath.Join(work, lastKeyFile), []byte(key+"\n"), 0o644)
	os.Remove(filepath.Join(work, buildingFile))
	say("kernel %s: built in %s, %d objects compiled", key, time.Since(makeStart).Round(time.Second), meta.ObjectsCompiled)
	if err := install(opts.OutDir, result, &meta, start); err != nil {
		return nil, err
	}
	return &Result{Dir: opts.OutDir, BuildDir: work, Entry: result, Commands: meta.Commands, Meta: meta}, nil
}

// makeCommands returns the make runs of a build in dir.
func makeCommands(opts Options, cacheDir, dir string, say func(string, ...any)) []Command {
	common := []string{"make", "-C", opts.Tree.Dir, "O=" + dir, "ARCH=x86_64", "CC=" + opts.CC,
		"KBUILD_BUILD_TIMESTAMP=" + BuildTimestamp, "KBUILD_BUILD_USER=bespoke",
		"KBUILD_BUILD_HOST=bespoke", "KBUILD_BUILD_VERSION=1"}
	common = append(common, opts.ExtraMake...)
	var env []string
	if strings.Contains(opts.CC+" "+strings.Join(opts.Env, " "), "ccache") {
		// Paths under the cache are hashed relative to the build dir, and
		// the build dir's name is left out, so that all build dirs (which
		// sit at the same depth) share ccache's objects.
		env = []string{"CCACHE_DIR=" + filepath.Join(cacheDir, "ccache"), "CCACHE_BASEDIR=" + cacheDir, "CCACHE_NOHASHDIR=1"}
	}
	env = append(env, opts.Env...)
	withArgs := func(args ...string) Command {
		return Command{Env: env, Args: append(append([]string{}, common...), args...)}
	}
	cmds := []Command{withArgs("olddefconfig"),
		// make writes the linker script again, and then it is rewritten
		// (or not) for this build's config.
		{Note: "remove " + filepath.Join(dir, ldsFile), Do: func() error {
			if err := os.Remove(filepath.Join(dir, ldsFile)); err != nil && !os.IsNotExist(err) {
				return err
			}
			return nil
		}},
		withArgs(ldsFile),
		{Note: "page-align the entry text in " + filepath.Join(dir, ldsFile) + " (without CPU_MITIGATIONS)", Do: func() error {
			return unpadEntryText(dir, say)
		}},
	}
	if len(opts.RemoveSyscalls) > 0 {
		remove := opts.RemoveSyscalls
		cmds = append(cmds, withArgs("archheaders"), Command{
			Note: fmt.Sprintf("route %d syscalls to sys_ni_syscall in %s", len(remove), filepath.Join(dir, syscallHeader)),
			Do:   func() error { return shakeSyscalls(dir, remove) },
		})
	}
	return append(cmds, withArgs(append([]string{"-j" + strconv.Itoa(opts.Jobs)}, targets...)...))
}

func commandLines(cmds []Command) []string {
	var s []string
	for _, c := range cmds {
		s = append(s, c.String())
	}
	return s
}

// finish fills in the metadata of a successful build in dir.
func finish(dir string, meta *Meta, input []byte) error {
	st, err := os.Stat(filepath.Join(dir, "arch/x86/boot/bzImage"))
	if err != nil {
		return fmt.Errorf("building kernel: make succeeded but left no bzImage: %w", err)
	}
	meta.BzImageBytes = st.Size()
	if meta.Vmlinux, err = ELFSizes(filepath.Join(dir, "vmlinux")); err != nil {
		return fmt.Errorf("building kernel: %w", err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, ".config"))
	if err != nil {
		return fmt.Errorf("building kernel: %w", err)
	}
	meta.EnabledY = CountEnabled(cfg)
	meta.Dropped = dropped(input, cfg)
	if meta.GCSections, err = kdce.ReadRemoved(dir); err != nil {
		return fmt.Errorf("building kernel: %w", err)
	}
	meta.BuiltAt = time.Now().UTC().Round(time.Second)
	return nil
}

// dropped lists the options set (=y, =m or a value) in the input that
// the final .config does not have with the same value.
func dropped(input, final []byte) []string {
	in, out := configMap(input), configMap(final)
	var d []string
	for k, v := range in {
		if out[k] != v {
			d = append(d, k+"="+v)
		}
	}
	sort.Strings(d)
	return d
}

// Builds returns the metadata of every finished build in the cache (its
// result dirs), in no particular order.
func Builds(cacheDir string) ([]Meta, error) {
	dirs, err := filepath.Glob(filepath.Join(cacheDir, "kbuild", "*", metaFile))
	if err != nil {
		return nil, err
	}
	var out []Meta
	for _, p := range dirs {
		if strings.HasPrefix(filepath.Base(filepath.Dir(p)), ".") {
			continue // a result dir being written (atomicdir.Stage)
		}
		m, err := readMeta(filepath.Dir(p))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// checkEntry checks that the artifacts of the result dir dir are those its
// metadata describes: a power loss or a full disk can leave an entry
// with its metadata and short or empty files. It fills in meta.Vmlinux
// for an entry from before Sizes had Code.
func checkEntry(dir string, meta *Meta) error {
	for _, a := range artifacts {
		st, err := os.Stat(filepath.Join(dir, a.name))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s is missing", a.name)
		}
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", a.name)
		}
		if a.name == "bzImage" && st.Size() != meta.BzImageBytes {
			return fmt.Errorf("bzImage is %d bytes, its metadata says %d", st.Size(), meta.BzImageBytes)
		}
		if a.name == "System.map" && st.Size() == 0 {
			return errors.New("empty System.map")
		}
	}
	s, err := ELFSizes(filepath.Join(dir, "vmlinux"))
	if err != nil {
		return fmt.Errorf("vmlinux: %w", err)
	}
	if meta.Vmlinux.Code == 0 { // an entry from before Sizes had Code
		meta.Vmlinux.Code = s.Code
	}
	if s != meta.Vmlinux {
		return fmt.Errorf("vmlinux's sections are %+v, its metadata says %+v", s, meta.Vmlinux)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, ".config"))
	if err != nil {
		return err
	}
	if n := CountEnabled(cfg); n != meta.EnabledY {
		return fmt.Errorf(".config enables %d options, its metadata says %d", n, meta.EnabledY)
	}
	return nil
}

func readMeta(dir string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("reading %s: %w", filepath.Join(dir, metaFile), err)
	}
	return m, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON[T any](path string) (T, error) {
	var v T
	b, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(b, &v)
}
