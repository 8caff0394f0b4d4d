package spec

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var ignoreUnexported = cmpopts.IgnoreUnexported(Spec{})

func intp(v int) *int { return &v }

func TestParseFull(t *testing.T) {
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Spec{
		File: "testdata/full.yaml",
		Dir:  dir,
		Name: "pg",
		Cmd:  []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "{state}/pgdata", "-p", "{port}", "-k", "/run/postgresql", "-c", "listen_addresses=*"},
		Env:  map[string]string{"LANG": "C.UTF-8", "PGTZ": "UTC", "DEBUG": "1"},
		User: &User{Name: "postgres"},

		Workdir:     "/var/lib/postgresql",
		Include:     []string{filepath.Join(dir, "conf/postgresql.conf"), "/etc/ssl/certs/ca-certificates.crt"},
		Exclude:     []string{"/usr/share/doc", "*.pyc"},
		Ports:       []Port{{5432, "tcp"}, {5432, "udp"}},
		Ready:       Ready{Kind: ReadyTCP, Port: 5432},
		Workload:    "pgbench -h {host} -p {port} -U postgres -i postgres && pgbench -h {host} -p {port:5432} -U postgres -T 5 postgres",
		Target:      TargetPC,
		Root:        RootInitramfs,
		Compression: "xz",
		Data:        DataTraced,
		ShakeLibs:   ShakeStatic,
		ShakeRemove: []string{"/usr/lib/x86_64-linux-gnu/libc.so.6:getpeername"},
		MemoryMB:    1024,
		CPUs:        2,
		Kernel: Kernel{
			Source:  filepath.Join(filepath.Dir(dir), "linux"),
			Enable:  []string{"SYSVIPC", "POSIX_MQUEUE"},
			Disable: []string{"IPV6"},
			Opt:     OptSize,
		},
		Setup: []string{"initdb -D {state}/pgdata --auth=trust -U postgres"},
		Dirs: []Dir{
			{Path: "/run/postgresql", Owner: "postgres:postgres", Mode: 0o775 | os.ModeSetgid},
			{Path: "/var/log/pg", Mode: 0o755},
		},
		Rlimits:         map[string]uint64{"NOFILE": 65536, "CORE": Unlimited},
		StopSignal:      "SIGINT",
		StopTimeout:     30 * time.Second,
		ReadyTimeout:    2 * time.Minute,
		WorkloadTimeout: 90 * time.Second,
	}
	if diff := cmp.Diff(want, got, ignoreUnexported); diff != "" {
		t.Errorf("Load(testdata/full.yaml) mismatch (-want +got):\n%s", diff)
	}
	for key, line := range map[string]int{"name": 2, "ports": 14, "kernel.enable": 24, "dirs.1": 31, "rlimits.CORE": 34} {
		if got := got.Line(key); got != line {
			t.Errorf("Line(%q) = %d, want %d", key, got, line)
		}
	}
}

func TestParseValid(t *testing.T) {
	dir, _ := filepath.Abs("conf")
	defaults := func(s Spec) *Spec {
		s.File = "conf/bespoke.yaml"
		s.Dir = dir
		if s.Target == "" {
			s.Target = DefaultTarget
		}
		s.Root = DefaultRoot
		s.Compression = Compressions[DefaultRoot][0]
		s.Data = DefaultData
		s.ShakeLibs = DefaultShakeLibs
		if s.MemoryMB == 0 {
			s.MemoryMB = DefaultMemoryMB
		}
		s.CPUs = max(s.CPUs, DefaultCPUs)
		s.Kernel.Opt = DefaultOpt
		s.StopSignal = DefaultStopSignal
		s.StopTimeout = DefaultStopTimeout
		s.ReadyTimeout = DefaultReadyTimeout
		s.WorkloadTimeout = DefaultWorkloadTimeout
		return &s
	}
	for _, tc := range []struct {
		name string
		yaml string
		want *Spec
	}{{
		name: "minimal",
		yaml: "cmd: [/bin/true]\n",
		want: defaults(Spec{Name: "true", Cmd: []string{"/bin/true"}}),
	}, {
		name: "cmd string split like a shell",
		yaml: `cmd: redis-server --port {port} --save '' --x "a b" c\ d` + "\nports: [6379]\n",
		want: defaults(Spec{Name: "redis-server", Cmd: []string{"redis-server", "--port", "{port}", "--save", "", "--x", "a b", "c d"}, Ports: []Port{{6379, "tcp"}}}),
	}, {
		name: "ready port added to ports",
		yaml: "cmd: [srv]\nready: tcp:8080\nports: [\"53/udp\"]\n",
		want: defaults(Spec{Name: "srv", Cmd: []string{"srv"}, Ready: Ready{Kind: ReadyTCP, Port: 8080}, Ports: []Port{{53, "udp"}, {8080, "tcp"}}}),
	}, {
		name: "ready tcp:{port} with one port",
		yaml: "cmd: [srv]\nports: 9000\nready: tcp:{port}\n",
		want: defaults(Spec{Name: "srv", Cmd: []string{"srv"}, Ready: Ready{Kind: ReadyTCP, Port: 9000}, Ports: []Port{{9000, "tcp"}}}),
	}, {
		name: "ready log",
		yaml: "cmd: [/usr/sbin/nginx, -g, daemon off;]\nready: 'log:start worker process \\d+'\n",
		want: defaults(Spec{Name: "nginx", Cmd: []string{"/usr/sbin/nginx", "-g", "daemon off;"}, Ready: Ready{Kind: ReadyLog, Regex: `start worker process \d+`}}),
	}, {
		name: "user with ids, memory in MiB, null fields",
		yaml: "cmd: [app]\nuser: {name: app, uid: 1000}\nmemory: 384MiB\nworkdir:\nenv: {A: '', B: x=y}\n",
		want: defaults(Spec{Name: "app", Cmd: []string{"app"}, User: &User{Name: "app", UID: intp(1000)}, MemoryMB: 384, Env: map[string]string{"A": "", "B": "x=y"}}),
	}, {
		name: "x- keys hold anchors",
		yaml: "x-port: &p 7000\ncmd: [app]\nports: [*p]\nready: tcp:{port}\n",
		want: defaults(Spec{Name: "app", Cmd: []string{"app"}, Ports: []Port{{7000, "tcp"}}, Ready: Ready{Kind: ReadyTCP, Port: 7000}}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("conf/bespoke.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, ignoreUnexported); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"unknown field", "cmd: [a]\nports: [1]\n\nprots: [6379]\n", []string{`bespoke.yaml:4: unknown field "prots" (did you mean "ports"?)`}},
		{"unknown field, no suggestion", "cmd: [a]\nzzzzzz: 1\n", []string{`bespoke.yaml:2: unknown field "zzzzzz" (known: name, cmd`}},
		{"x- key nested", "cmd: [a]\nkernel:\n  x-a: 1\n", []string{`bespoke.yaml:3: unknown field "x-a" in kernel`}},
		{"unknown nested field", "cmd: [a]\nkernel:\n  enabel: [EPOLL]\n", []string{`bespoke.yaml:3: unknown field "enabel" in kernel (did you mean "enable"?)`}},
		{"missing cmd", "name: x\nports: [80]\n", []string{`bespoke.yaml: missing cmd`}},
		{"empty cmd", "name: x\ncmd: []\n", []string{`bespoke.yaml:2: missing cmd`}},
		{"empty file", "# nothing\n", []string{`bespoke.yaml: the spec is empty`}},
		{"not a mapping", "- a\n- b\n", []string{`bespoke.yaml:1: the spec: want a mapping`}},
		{"syntax error", "cmd: [a\nports: 1\n", []string{`bespoke.yaml:`}},
		{"duplicate key", "cmd: [a]\nready: tcp:1\nready: tcp:2\n", []string{`bespoke.yaml:3: ready is set twice (first on line 2)`}},
		{"cmd wrong type", "cmd: {a: b}\n", []string{`bespoke.yaml:1: cmd: want the program and its arguments`}},
		{"cmd needs a shell", "cmd: redis-server > log\n", []string{`bespoke.yaml:1: cmd: not run by a shell: write it as a YAML list`}},
		{"cmd unterminated quote", "cmd: \"a 'b\"\n", []string{`bespoke.yaml:1: cmd: unterminated '`}},
		{"unquoted placeholder", "cmd: [a, --port, {port}]\nports: [1]\n", []string{`bespoke.yaml:1: cmd: want a string, got the mapping {port} (quote placeholders: "{port}")`}},
		{"unquoted placeholder value", "cmd: [a]\nworkload: {host}\n", []string{`bespoke.yaml:2: workload: want a string, got the mapping {host}`}},
		{"wrong type name", "cmd: [a]\nname: [x]\n", []string{`bespoke.yaml:2: name: want a string, got a list`}},
		{"bad name", "cmd: [a]\nname: My App\n", []string{`bespoke.yaml:2: bad name "My App"`}},
		{"bad ready", "cmd: [a]\nready: http:80\n", []string{`bespoke.yaml:2: bad ready "http:80": want tcp:PORT`}},
		{"bad ready port", "cmd: [a]\nready: tcp:99999\n", []string{`bespoke.yaml:2: bad ready "tcp:99999"`}},
		{"bad ready regex", "cmd: [a]\nready: log:a(b\n", []string{`bespoke.yaml:2: bad ready "log:a(b"`}},
		{"ready {port} ambiguous", "cmd: [a]\nports: [1, 2]\nready: tcp:{port}\n", []string{`bespoke.yaml:3: ready tcp:{port} needs exactly one port`}},
		{"ready {port:N} not a port", "cmd: [a]\nports: [1]\nready: tcp:{port:2}\n", []string{`bespoke.yaml:3: ready tcp:{port:2}: 2 is not one of the ports`}},
		{"bad port", "cmd: [a]\nports:\n  - 80\n  - 70000\n", []string{`bespoke.yaml:4: bad port "70000"`}},
		{"bad port protocol", "cmd: [a]\nports: [\"80/sctp\"]\n", []string{`bespoke.yaml:2: bad port "80/sctp": protocol "sctp"`}},
		{"port as list", "cmd: [a]\nports: [[80]]\n", []string{`bespoke.yaml:2: ports: want a port like 6379`}},
		{"duplicate port", "cmd: [a]\nports:\n  - 80\n  - 80/tcp\n", []string{`bespoke.yaml:4: port 80/tcp is listed twice`}},
		{"memory without unit", "cmd: [a]\nmemory: 256\n", []string{`bespoke.yaml:2: bad memory 256: give a unit, e.g. 256M`}},
		{"memory bad unit", "cmd: [a]\nmemory: 256K\n", []string{`bespoke.yaml:2: bad memory "256K": the unit must be M or G`}},
		{"memory garbage", "cmd: [a]\nmemory: lots\n", []string{`bespoke.yaml:2: bad memory "lots"`}},
		{"cpus not a number", "cmd: [a]\ncpus: two\n", []string{`bespoke.yaml:2: cpus: want a whole number, got "two"`}},
		{"cpus zero", "cmd: [a]\ncpus: 0\n", []string{`bespoke.yaml:2: bad cpus 0`}},
		{"bad pgo_hot_flags", "cmd: [a]\nkernel:\n  opt: pgo\n  pgo_hot_flags: [-O3]\n", []string{`bespoke.yaml:4: pgo_hot_flags: "-O3": want one GCC -f option`}},
		{"unknown seccomp mode", "cmd: [a]\nseccomp: strict\n", []string{`bespoke.yaml:2: unknown seccomp mode "strict": want enforce, log, off`}},
		{"bad seccomp_allow", "cmd: [a]\nseccomp_allow: [Clone3]\n", []string{`bespoke.yaml:2: seccomp_allow: "Clone3" is not a syscall name`}},
		{"seccomp_allow with off", "cmd: [a]\nseccomp: off\nseccomp_allow: [clone3]\n", []string{`bespoke.yaml:3: seccomp_allow has no effect with seccomp: off`}},
		{"unknown shake mode", "cmd: [a]\nshake_libs: dynamic\n", []string{`bespoke.yaml:2: unknown library shaking mode "dynamic": want static, profile, off`}},
		{"bad shake_remove", "cmd: [a]\nshake_libs: static\nshake_remove: [getpeername]\n", []string{`bespoke.yaml:3: shake_remove: "getpeername" is not FILE:FUNCTION`}},
		{"shake_remove without shaking", "cmd: [a]\nshake_remove: [/lib/x.so:f]\n", []string{`bespoke.yaml:2: shake_remove needs shake_libs: static or profile`}},
		{"unknown compression", "cmd: [a]\ncompression: zstd\n", []string{`bespoke.yaml:2: compression "zstd" of an erofs root: want lz4hc or lzma`}},
		{"lzma initramfs", "cmd: [a]\nroot: initramfs\ncompression: lzma\n", []string{`bespoke.yaml:3: compression "lzma" of an initramfs root: want xz`}},
		{"unknown target", "cmd: [a]\ntarget: qemu-q35\n", []string{`bespoke.yaml:2: unknown target "qemu-q35": want one of qemu-microvm, qemu-pc, firecracker`}},
		{"bad opt", "cmd: [a]\nkernel:\n  opt: O3\n", []string{`bespoke.yaml:3: bad kernel opt "O3"`}},
		{"shake not a bool", "cmd: [a]\nkernel:\n  shake_syscalls: yes please\n", []string{`bespoke.yaml:3: kernel.shake_syscalls: want true or false`}},
		{"dce not a bool", "cmd: [a]\nkernel:\n  dce: lto\n", []string{`bespoke.yaml:3: kernel.dce: want true or false`}},
		{"dce with pgo", "cmd: [a]\nkernel:\n  dce: true\n  opt: pgo\n", []string{`kernel.dce builds the kernel with Clang, and a profile-guided kernel (kernel.opt: pgo) is GCC's`}},
		{"bad syscall name", "cmd: [a]\nkernel:\n  keep_syscalls: [Sysinfo]\n", []string{`keep_syscalls: "Sysinfo" is not a syscall name`}},
		{"bad symbol", "cmd: [a]\nkernel:\n  enable:\n    - epoll\n", []string{`bespoke.yaml:4: bad kernel symbol "epoll"`}},
		{"enable and disable", "cmd: [a]\nkernel:\n  enable: [IPV6]\n  disable:\n    - CONFIG_IPV6\n", []string{`bespoke.yaml:5: kernel symbol IPV6 is both enabled and disabled`}},
		{"unknown placeholder", "cmd: [a]\nports: [80]\nworkload: curl http://{hots}:{port}/\n", []string{`bespoke.yaml:3: workload: unknown placeholder {hots}`}},
		{"{port} with no ports", "cmd: [a]\nworkload: curl {host}:{port}\n", []string{`bespoke.yaml:2: workload: {port}: the spec has no ports`}},
		{"{port} ambiguous", "cmd: [a]\nports: [80, 443]\nworkload: curl {host}:{port}\n", []string{`bespoke.yaml:3: workload: {port} is ambiguous with ports [80, 443]: name one, e.g. {port:80}`}},
		{"{port:N} unknown", "cmd: [a, '{port:81}']\nports: [80]\n", []string{`bespoke.yaml:1: cmd: {port:81}: 81 is not one of the spec's ports [80]`}},
		{"{host} in cmd", "cmd: [a, --bind, '{host}']\n", []string{`bespoke.yaml:1: cmd: {host} is not known here`}},
		{"{state} without setup", "cmd: [a, '{state}/data']\n", []string{`bespoke.yaml:1: cmd: {state} is not known here`}},
		{"{port} in setup", "cmd: [a]\nports: [1]\nsetup:\n  - echo ok\n  - init --port {port}\n", []string{`bespoke.yaml:5: setup: {port}: the spec has no ports`}},
		{"env placeholder", "cmd: [a]\nenv:\n  X: '{nope}'\n", []string{`bespoke.yaml:3: env: unknown placeholder {nope}`}},
		{"env bad name", "cmd: [a]\nenv:\n  1X: y\n", []string{`bespoke.yaml:3: env: bad variable name "1X"`}},
		{"env list", "cmd: [a]\nenv: [A=b]\n", []string{`bespoke.yaml:2: env: want a mapping of NAME: value, got a list`}},
		{"user without name", "cmd: [a]\nuser:\n  uid: 5\n", []string{`bespoke.yaml:2: user: give a name`}},
		{"user uid string", "cmd: [a]\nuser: {name: x, uid: abc}\n", []string{`bespoke.yaml:2: user.uid: want a whole number, got "abc"`}},
		{"root with uid", "cmd: [a]\nuser: {name: root, uid: 5}\n", []string{`bespoke.yaml:2: user root must have uid and gid 0`}},
		{"relative workdir", "cmd: [a]\nworkdir: data\n", []string{`bespoke.yaml:2: workdir "data" must be an absolute path`}},
		{"relative dir", "cmd: [a]\ndirs:\n  - /run/x\n  - {path: run/y}\n", []string{`bespoke.yaml:4: dirs: path "run/y" must be absolute`}},
		{"duplicate dir", "cmd: [a]\ndirs:\n  - /run/x\n  - /run/x/\n", []string{`bespoke.yaml:4: dirs: /run/x/ is listed twice`}},
		{"bad mode", "cmd: [a]\ndirs:\n  - path: /run/x\n    mode: rwx\n", []string{`bespoke.yaml:4: bad mode "rwx"`}},
		{"bad owner", "cmd: [a]\ndirs:\n  - path: /run/x\n    owner: a:b:c\n", []string{`bespoke.yaml:4: bad owner "a:b:c"`}},
		{"unknown dir field", "cmd: [a]\ndirs:\n  - path: /run/x\n    perms: 0755\n", []string{`bespoke.yaml:4: unknown field "perms" in dirs.0`}},
		{"unknown rlimit", "cmd: [a]\nrlimits:\n  FILES: 10\n", []string{`bespoke.yaml:3: unknown rlimit "FILES"`}},
		{"bad rlimit", "cmd: [a]\nrlimits:\n  NOFILE: many\n", []string{`bespoke.yaml:3: bad rlimit NOFILE "many"`}},
		{"bad signal", "cmd: [a]\nstop_signal: SIGFOO\n", []string{`bespoke.yaml:2: bad stop_signal "SIGFOO"`}},
		{"duration without unit", "cmd: [a]\nstop_timeout: 30\n", []string{`bespoke.yaml:2: bad stop_timeout "30": give a unit, e.g. 30s`}},
		{"workload_timeout without workload", "cmd: [a]\nworkload_timeout: 1m\n", []string{`bespoke.yaml:2: workload_timeout is set but there is no workload`}},
		{"second document", "cmd: [a]\n---\ncmd: [b]\n", []string{`bespoke.yaml:2: a second YAML document`}},
		{"workload without ready or port", "cmd: [a]\nports: [53/udp]\nworkload: dig\n", []string{`bespoke.yaml:3: a workload needs to know when the program is ready`}},
		{"bad exclude", "cmd: [a]\nexclude: ['[']\n", []string{`bespoke.yaml:2: bad exclude pattern "["`}},
		{"several problems", "cmd: [a]\nmemory: 1\ncpus: -1\n", []string{`bespoke.yaml:2: bad memory 1`, `bespoke.yaml:3: bad cpus -1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bespoke.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}

// TestExamples checks that every example spec in the repository parses.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*/bespoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples/*/bespoke.yaml found")
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			sp, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(sp.Cmd) == 0 || sp.Name == "" {
				t.Errorf("Load(%s): got cmd %q, name %q; want both set", f, sp.Cmd, sp.Name)
			}
		})
	}
}

func TestRedisExample(t *testing.T) {
	sp, err := Load("../../examples/redis/bespoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	argv, _, err := sp.Command(sp.GuestPorts(), "")
	if err != nil {
		t.Fatal(err)
	}
	wantArgv := []string{"redis-server", "--port", "6379", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--bind", "0.0.0.0"}
	if diff := cmp.Diff(wantArgv, argv); diff != "" {
		t.Errorf("image argv mismatch (-want +got):\n%s", diff)
	}
	w, err := sp.Expand(sp.Workload, "127.0.0.1", map[int]int{6379: 40123})
	if err != nil {
		t.Fatal(err)
	}
	if want := "redis-benchmark -h 127.0.0.1 -p 40123 -q -n 2000 -c 4 -t set,get"; w != want {
		t.Errorf("workload: got %q, want %q", w, want)
	}
	if got, want := sp.Ready.String(), "tcp:6379"; got != want {
		t.Errorf("ready: got %q, want %q", got, want)
	}
	if sp.MemoryMB != 256 {
		t.Errorf("memory: got %dM, want 256M", sp.MemoryMB)
	}
}

// TestDocsExample checks that every YAML block in docs/spec.md parses.
func TestDocsExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/spec.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) == 0 {
		t.Fatal("docs/spec.md has no ```yaml blocks")
	}
	for i, m := range blocks {
		if _, err := Parse("docs/spec.md", m[1]); err != nil {
			t.Errorf("docs/spec.md yaml block %d: %v", i+1, err)
		}
	}
}

func TestFromArgs(t *testing.T) {
	dir := t.TempDir()
	got, err := FromArgs(Flags{
		Ready:    "tcp:{port}",
		Workload: "redis-benchmark -h {host} -p {port} -q",
		Ports:    []string{"6379"},
		Env:      []string{"A=b=c"},
		Include:  []string{"data"},
		Memory:   "512M",
		Dir:      dir,
	}, []string{"/usr/bin/redis-server", "--port", "{port}"})
	if err != nil {
		t.Fatal(err)
	}
	want := &Spec{
		Dir: dir, Name: "redis-server",
		Cmd:             []string{"/usr/bin/redis-server", "--port", "{port}"},
		Env:             map[string]string{"A": "b=c"},
		Include:         []string{filepath.Join(dir, "data")},
		Ports:           []Port{{6379, "tcp"}},
		Ready:           Ready{Kind: ReadyTCP, Port: 6379},
		Workload:        "redis-benchmark -h {host} -p {port} -q",
		Target:          DefaultTarget,
		Root:            DefaultRoot,
		Compression:     Compressions[DefaultRoot][0],
		Data:            DefaultData,
		ShakeLibs:       DefaultShakeLibs,
		MemoryMB:        512,
		CPUs:            1,
		Kernel:          Kernel{Opt: DefaultOpt},
		StopSignal:      DefaultStopSignal,
		StopTimeout:     DefaultStopTimeout,
		ReadyTimeout:    DefaultReadyTimeout,
		WorkloadTimeout: DefaultWorkloadTimeout,
	}
	if diff := cmp.Diff(want, got, ignoreUnexported); diff != "" {
		t.Errorf("FromArgs mismatch (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		flags Flags
		argv  []string
		want  string
	}{
		{Flags{}, nil, "no program"},
		{Flags{Ready: "tcp:x"}, []string{"a"}, `--ready: bad ready "tcp:x"`},
		{Flags{Ports: []string{"0"}}, []string{"a"}, `--port: bad port "0"`},
		{Flags{Memory: "1T"}, []string{"a"}, `--memory: bad memory "1T"`},
		{Flags{Env: []string{"novalue"}}, []string{"a"}, `--env "novalue": want NAME=VALUE`},
		{Flags{Workload: "x {port}"}, []string{"a"}, `workload: {port}: the spec has no ports`},
		{Flags{Target: "kvm"}, []string{"a"}, `unknown target "kvm"`},
	} {
		_, err := FromArgs(tc.flags, tc.argv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromArgs(%+v, %q): got error %v, want one containing %q", tc.flags, tc.argv, err, tc.want)
		}
	}
}

// TestOverride: each flag given beside a spec file sets its field; single
// values replace the file's, lists add to it.
func TestOverride(t *testing.T) {
	const file = `name: redis
cmd: redis-server --port {port}
env: {A: from-file, B: kept}
ports: [6379]
ready: tcp:6379
workload: redis-benchmark -p {port}
include: [data]
exclude: ["*.pyc"]
user: {name: redis, uid: 100}
memory: 256M
`
	dir := t.TempDir()
	load := func(t *testing.T) *Spec {
		sp, err := Parse(filepath.Join(dir, "bespoke.yaml"), []byte(file))
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	wd := t.TempDir()
	for _, tc := range []struct {
		flags Flags
		key   string
		check func(*Spec) any
		want  any
	}{
		{Flags{Name: "cache"}, "name", func(sp *Spec) any { return sp.Name }, "cache"},
		{Flags{Ready: "log:Ready to accept"}, "ready", func(sp *Spec) any { return sp.Ready }, Ready{Kind: ReadyLog, Regex: "Ready to accept"}},
		{Flags{Workload: "true"}, "workload", func(sp *Spec) any { return sp.Workload }, "true"},
		{Flags{Ports: []string{"6379", "53/udp"}}, "ports", func(sp *Spec) any { return sp.Ports }, []Port{{53, "udp"}, {6379, "tcp"}}},
		{Flags{Env: []string{"A=from-flag", "C=new"}}, "env", func(sp *Spec) any { return sp.Env },
			map[string]string{"A": "from-flag", "B": "kept", "C": "new"}},
		{Flags{User: "nobody"}, "user", func(sp *Spec) any { return *sp.User }, User{Name: "nobody"}},
		{Flags{Workdir: "/srv"}, "workdir", func(sp *Spec) any { return sp.Workdir }, "/srv"},
		{Flags{Include: []string{"extra", "/etc/hosts"}, Dir: wd}, "include", func(sp *Spec) any { return sp.Include },
			[]string{filepath.Join(dir, "data"), filepath.Join(wd, "extra"), "/etc/hosts"}},
		{Flags{Exclude: []string{"/usr/share/doc"}}, "exclude", func(sp *Spec) any { return sp.Exclude }, []string{"*.pyc", "/usr/share/doc"}},
		{Flags{Target: TargetPC}, "target", func(sp *Spec) any { return sp.Target }, TargetPC},
		{Flags{ShakeLibs: ShakeStatic}, "shake-libs", func(sp *Spec) any { return sp.ShakeLibs }, ShakeStatic},
		{Flags{Root: RootInitramfs}, "root", func(sp *Spec) any { return sp.Root }, RootInitramfs},
		{Flags{Compression: "lzma"}, "compression", func(sp *Spec) any { return sp.Compression }, "lzma"},
		{Flags{Data: DataTraced}, "data", func(sp *Spec) any { return sp.Data }, DataTraced},
		{Flags{Memory: "1G"}, "memory", func(sp *Spec) any { return sp.MemoryMB }, 1024},
		{Flags{CPUs: 2}, "cpus", func(sp *Spec) any { return sp.CPUs }, 2},
	} {
		t.Run(tc.key, func(t *testing.T) {
			sp := load(t)
			set, err := tc.flags.Override(sp)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tc.key}, set); diff != "" {
				t.Errorf("fields set (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, tc.check(sp), ignoreUnexported); diff != "" {
				t.Errorf("%s after the flag (-want +got):\n%s", tc.key, diff)
			}
			if tc.key != "name" && sp.Name != "redis" || tc.key != "memory" && sp.MemoryMB != 256 {
				t.Errorf("a flag for %s changed other fields: name %q, memory %d", tc.key, sp.Name, sp.MemoryMB)
			}
		})
	}

	sp := load(t)
	if set, err := (Flags{}).Override(sp); err != nil || set != nil {
		t.Errorf("no flags: set %v, %v; want nothing set", set, err)
	}
	for _, tc := range []struct {
		flags Flags
		want  string
	}{
		{Flags{Target: "kvm"}, `with the flags (target): ` + filepath.Join(dir, "bespoke.yaml")},
		{Flags{Ready: "tcp:x"}, `--ready: bad ready "tcp:x"`},
		{Flags{Memory: "1T"}, `--memory: bad memory "1T"`},
		{Flags{CPUs: 100}, `bad cpus 100`},
	} {
		if _, err := tc.flags.Override(load(t)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Override(%+v): got error %v, want one containing %q", tc.flags, err, tc.want)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "a b  c", want: []string{"a", "b", "c"}},
		{in: `--save ''`, want: []string{"--save", ""}},
		{in: `-c "listen_addresses=*" 'a b'c`, want: []string{"-c", "listen_addresses=*", "a bc"}},
		{in: `"a \"q\" \\ \n"`, want: []string{`a "q" \ \n`}},
		{in: `a\ b \$x`, want: []string{"a b", "$x"}},
		{in: "a\\\nb", want: []string{"ab"}},
		{in: "nginx -g 'daemon off;'", want: []string{"nginx", "-g", "daemon off;"}},
		{in: "{port} x{port:80}", want: []string{"{port}", "x{port:80}"}},
		{in: "a=b#c", want: []string{"a=b#c"}},
		{in: "", want: nil},
		{in: "echo $HOME", wantErr: "not run by a shell"},
		{in: `echo "$HOME"`, wantErr: "not run by a shell"},
		{in: "a | b", wantErr: "not run by a shell"},
		{in: "a && b", wantErr: "not run by a shell"},
		{in: "ls *.c", wantErr: "not run by a shell"},
		{in: "ls ~/x", wantErr: "write the full path"},
		{in: "a # comment", wantErr: "comment"},
		{in: `a "b`, wantErr: `unterminated "`},
		{in: `a \`, wantErr: `trailing \`},
	} {
		got, err := SplitCommand(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("SplitCommand(%q): got %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("SplitCommand(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("SplitCommand(%q) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestExcluded(t *testing.T) {
	sp := &Spec{Exclude: []string{"/usr/share/doc", "*.pyc", "/etc/ssl/private/*", "/usr/lib/*/gconv"}}
	for path, want := range map[string]bool{
		"/usr/share/doc":                               true,
		"/usr/share/doc/redis/copyright":               true,
		"/usr/share/docs":                              false,
		"/usr/lib/python3/x.pyc":                       true,
		"/usr/lib/python3/x.py":                        false,
		"/etc/ssl/private/key.pem":                     true,
		"/etc/ssl/private":                             false,
		"/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so":    true,
		"/usr/lib/x86_64-linux-gnu/libc.so.6":          false,
		"/usr/lib/x86_64-linux-gnu/gconv-modules.conf": false,
	} {
		if got := sp.Excluded(path); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestKernelSyscalls(t *testing.T) {
	sp, err := Parse("bespoke.yaml", []byte("cmd: [a]\nkernel:\n  keep_syscalls: [io_uring_setup, io_uring_enter]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !sp.Kernel.ShakeSyscalls || len(sp.Kernel.KeepSyscalls) != 2 {
		t.Errorf("kernel %+v: want shake_syscalls implied by keep_syscalls, two kept", sp.Kernel)
	}
	sp, err = Parse("bespoke.yaml", []byte("cmd: [a]\nkernel:\n  shake_syscalls: true\n"))
	if err != nil || !sp.Kernel.ShakeSyscalls {
		t.Errorf("shake_syscalls: true: %+v, %v", sp, err)
	}
	sp, err = Parse("bespoke.yaml", []byte("cmd: [a]\nkernel:\n  dce: true\n"))
	if err != nil || !sp.Kernel.DCE {
		t.Errorf("dce: true: %+v, %v", sp, err)
	}
}

func TestKernelMarch(t *testing.T) {
	sp, err := Parse("bespoke.yaml", []byte("cmd: [a]\nkernel:\n  march: x86-64-v3\n"))
	if err != nil || sp.Kernel.March != "x86-64-v3" {
		t.Fatalf("march: %+v, %v", sp, err)
	}
	if _, err := Parse("bespoke.yaml", []byte("cmd: [a]\nkernel:\n  march: '-O3 -march=x'\n")); err == nil || !strings.Contains(err.Error(), "bad kernel march") {
		t.Errorf("a march with flags in it: %v, want an error", err)
	}
}
