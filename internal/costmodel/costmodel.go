// Package costmodel counts what a guest executes, deterministically, with
// bespoke's QEMU TCG plugin (plugin/cost.c, built by scripts/qemu-plugin.sh
// as bespoke-cost.so): kernel and user instructions, translation blocks
// executed (a block ends at every branch: the proxy for branches taken),
// misses of a model of the kernel's level-1 instruction cache, and the
// executions of every kernel block, which Functions maps to the functions
// of the kernel's vmlinux. A Session loads the plugin into one QEMU run and
// takes snapshots of its counters when the host asks (the workload's start
// and end); differences of snapshots are what a workload cost.
package costmodel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PluginFile is the plugin's file name, next to the bespoke binary.
const PluginFile = "bespoke-cost.so"

// PluginEnv names the plugin's path, over the file next to bespoke.
const PluginEnv = "BESPOKE_COST_PLUGIN"

// The L1i model the plugin simulates, for reports.
const CacheModel = "kernel code only; 32 KiB, 8-way, 64-byte lines, LRU"

// ErrNoPlugin: the plugin was not found.
var ErrNoPlugin = errors.New("the cost model's QEMU plugin is not built")

// FindPlugin returns the plugin to load: path when given, else
// $BESPOKE_COST_PLUGIN, else bespoke-cost.so next to the running binary.
func FindPlugin(path string) (string, error) {
	from := "--plugin"
	if path == "" {
		path, from = os.Getenv(PluginEnv), "$"+PluginEnv
	}
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		path, from = filepath.Join(filepath.Dir(exe), PluginFile), "next to bespoke"
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: no %s (%s): build it with make plugin (it fetches QEMU's plugin header and needs curl and a C compiler), or name it with --plugin FILE", ErrNoPlugin, path, from)
	}
	return filepath.Abs(path)
}

// Counters are the plugin's totals at one moment.
type Counters struct {
	KernelInsns uint64 `json:"kernel_insns"`
	UserInsns   uint64 `json:"user_insns"`
	KernelTBs   uint64 `json:"kernel_tbs"`
	UserTBs     uint64 `json:"user_tbs"`
	L1iAccesses uint64 `json:"l1i_accesses"`
	L1iMisses   uint64 `json:"l1i_misses"`
	// FirstUser is every instruction executed before the first user-mode
	// block ran: the boot up to the init's first instruction (0: none yet).
	FirstUser uint64 `json:"first_user_insns"`
}

// Insns is every instruction counted.
func (c Counters) Insns() uint64 { return c.KernelInsns + c.UserInsns }

// Sub returns c less an earlier snapshot's counters.
func (c Counters) Sub(e Counters) Counters {
	return Counters{
		KernelInsns: c.KernelInsns - e.KernelInsns,
		UserInsns:   c.UserInsns - e.UserInsns,
		KernelTBs:   c.KernelTBs - e.KernelTBs,
		UserTBs:     c.UserTBs - e.UserTBs,
		L1iAccesses: c.L1iAccesses - e.L1iAccesses,
		L1iMisses:   c.L1iMisses - e.L1iMisses,
		FirstUser:   c.FirstUser,
	}
}

// Block is a kernel translation block: its address, its instructions and
// how often it ran.
type Block struct {
	Addr  uint64
	Insns uint64
	Count uint64
}

// Snapshot is one snapshot of the plugin.
type Snapshot struct {
	Counters
	Blocks []Block
}

// Sub returns what ran between an earlier snapshot e and s: the counters'
// differences and each block's executions since.
func (s *Snapshot) Sub(e *Snapshot) *Snapshot {
	type key struct{ addr, insns uint64 }
	before := map[key]uint64{}
	for _, b := range e.Blocks {
		before[key{b.Addr, b.Insns}] += b.Count
	}
	d := &Snapshot{Counters: s.Counters.Sub(e.Counters)}
	for _, b := range s.Blocks {
		if n := b.Count - before[key{b.Addr, b.Insns}]; n > 0 && n <= b.Count {
			d.Blocks = append(d.Blocks, Block{b.Addr, b.Insns, n})
		}
	}
	return d
}

// ReadSnapshot parses a snapshot file of the plugin.
func ReadSnapshot(path string) (*Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &Snapshot{}
	fields := map[string]*uint64{
		"kernel_insns": &s.KernelInsns, "user_insns": &s.UserInsns,
		"kernel_tbs": &s.KernelTBs, "user_tbs": &s.UserTBs,
		"l1i_accesses": &s.L1iAccesses, "l1i_misses": &s.L1iMisses,
		"first_user_insns": &s.FirstUser,
	}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Split(sc.Text(), "\t")
		bad := func() error { return fmt.Errorf("%s:%d: bad line %q", path, n, sc.Text()) }
		switch {
		case len(f) == 4 && f[0] == "tb":
			addr, err1 := strconv.ParseUint(f[1], 16, 64)
			insns, err2 := strconv.ParseUint(f[2], 10, 64)
			count, err3 := strconv.ParseUint(f[3], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, bad()
			}
			s.Blocks = append(s.Blocks, Block{addr, insns, count})
		case len(f) == 2 && fields[f[0]] != nil:
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return nil, bad()
			}
			*fields[f[0]] = v
		default:
			return nil, bad()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if n < len(fields) {
		return nil, fmt.Errorf("%s: cut short (%d lines)", path, n)
	}
	return s, nil
}

// Session is the plugin loaded into one QEMU run: a directory with the
// control FIFO and the snapshots.
type Session struct {
	plugin string
	dir    string
}

// NewSession makes a session's directory for plugin.
func NewSession(plugin string) (*Session, error) {
	dir, err := os.MkdirTemp("", "bespoke-cost-")
	if err != nil {
		return nil, err
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "ctl"), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cost model: %w", err)
	}
	return &Session{plugin: plugin, dir: dir}, nil
}

// PluginArg is the value of QEMU's -plugin option for the session.
func (s *Session) PluginArg() string {
	return fmt.Sprintf("%s,ctl=%s,out=%s", s.plugin, filepath.Join(s.dir, "ctl"), s.dir)
}

// Close removes the session's files.
func (s *Session) Close() error { return os.RemoveAll(s.dir) }

// snapWait bounds the wait for a snapshot.
const snapWait = 30 * time.Second

// Snap asks the plugin for a snapshot named name (lower case letters,
// digits, - and _) and reads it.
func (s *Session) Snap(ctx context.Context, name string) (*Snapshot, error) {
	path := filepath.Join(s.dir, name+".tsv")
	os.Remove(path)
	ctx, cancel := context.WithTimeout(ctx, snapWait)
	defer cancel()
	// The plugin's reader opens the FIFO at QEMU's start, and again after
	// each request: until it has, opening for writing says ENXIO.
	for {
		f, err := os.OpenFile(filepath.Join(s.dir, "ctl"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			_, err = f.WriteString("snap " + name + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("cost model: asking for snapshot %s: %w", name, err)
			}
			break
		}
		if !errors.Is(err, syscall.ENXIO) {
			return nil, fmt.Errorf("cost model: asking for snapshot %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cost model: the plugin did not take the request for snapshot %s within %v: did QEMU load it?", name, snapWait)
		case <-time.After(5 * time.Millisecond):
		}
	}
	for {
		if _, err := os.Stat(path); err == nil {
			return ReadSnapshot(path)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cost model: no snapshot %s within %v", name, snapWait)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Exit reads the snapshot the plugin writes when QEMU ends.
func (s *Session) Exit() (*Snapshot, error) {
	return ReadSnapshot(filepath.Join(s.dir, "exit.tsv"))
}
