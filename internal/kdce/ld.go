package kdce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvLD is the environment variable that names the linker bespoke-ld runs
// (ld.lld-14).
const EnvLD = "BESPOKE_LD"

// LogFile is where bespoke-ld writes what the final link of vmlinux
// removed (--print-gc-sections), beside it in the build dir.
const LogFile = "vmlinux.gc-sections"

// scriptSuffix is the kernel's linker script; bespoke-ld's copy of it sits
// beside it as PatchedScript.
const (
	scriptSuffix  = "arch/x86/kernel/vmlinux.lds"
	PatchedScript = "vmlinux.dce.lds"
)

// LDMain is bespoke-ld, the linker Kbuild runs (make LD=bespoke-ld): linker
// is the one it runs ($BESPOKE_LD), args are its arguments without the
// program name. A link with the kernel's
// linker script (vmlinux and link-vmlinux.sh's kallsyms passes) gets
// --gc-sections and the patched script, and the final one's removed
// sections go to LogFile; every other link (vmlinux.o, built-in objects,
// the boot code) runs unchanged.
func LDMain(linker string, args []string, stdout, stderr io.Writer) int {
	ld := strings.Fields(linker)
	if len(ld) == 0 {
		fmt.Fprintf(stderr, "bespoke-ld: %s is not set (bespoke sets it to the linker to run)\n", EnvLD)
		return 2
	}
	args, script, err := rewrite(args)
	if err != nil {
		fmt.Fprintf(stderr, "bespoke-ld: %v\n", err)
		return 1
	}
	cmd := exec.Command(ld[0], append(ld[1:], args...)...)
	cmd.Stdin, cmd.Stderr = os.Stdin, stderr
	var gc bytes.Buffer
	if script {
		cmd.Stdout = &gc
	} else {
		cmd.Stdout = stdout
	}
	err = cmd.Run()
	if script {
		if out := output(args); filepath.Base(out) == "vmlinux" && err == nil {
			if werr := os.WriteFile(filepath.Join(filepath.Dir(out), LogFile), gc.Bytes(), 0o644); werr != nil {
				fmt.Fprintf(stderr, "bespoke-ld: %v\n", werr)
				return 1
			}
		}
		for _, l := range strings.SplitAfter(gc.String(), "\n") {
			if l != "" && !strings.HasPrefix(l, "removing unused section") {
				io.WriteString(stdout, l)
			}
		}
	}
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(stderr, "bespoke-ld: running %s: %v\n", ld[0], err)
		return 1
	}
	return 0
}

// rewrite returns args with the kernel's linker script replaced by the
// patched copy it writes beside it and --gc-sections --print-gc-sections
// added, and whether it did.
func rewrite(args []string) ([]string, bool, error) {
	out := make([]string, 0, len(args)+2)
	found := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		var path, prefix string
		switch {
		case strings.HasPrefix(a, "--script="):
			prefix, path = "--script=", a[len("--script="):]
		case (a == "--script" || a == "-T") && i+1 < len(args):
			out = append(out, a)
			i++
			a, path = args[i], args[i]
		case strings.HasPrefix(a, "-T") && len(a) > 2:
			prefix, path = "-T", a[2:]
		}
		if path != "" && strings.HasSuffix(path, scriptSuffix) {
			patched, err := patchFile(path)
			if err != nil {
				return nil, false, err
			}
			a, found = prefix+patched, true
		}
		out = append(out, a)
	}
	if found {
		out = append([]string{"--gc-sections", "--print-gc-sections"}, out...)
	}
	return out, found, nil
}

// patchFile writes PatchScript's copy of the script at path beside it and
// returns the copy's path.
func patchFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	patched, err := PatchScript(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	out := filepath.Join(filepath.Dir(path), PatchedScript)
	if err := os.WriteFile(out, patched, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// output is the -o argument of a link.
func output(args []string) string {
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			return args[i+1]
		}
		if strings.HasPrefix(a, "-o") && len(a) > 2 {
			return a[2:]
		}
	}
	return ""
}
