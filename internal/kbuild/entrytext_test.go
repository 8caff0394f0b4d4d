package kbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ldsText is the end of .text in a vmlinux.lds that Kbuild generated for
// Linux 6.12 on x86-64.
const ldsText = ` .text : AT(ADDR(.text) - 0xffffffff80000000) {
  . = ALIGN(16); __static_call_text_start = .; *(.static_call.text) __static_call_text_end = .;
  . = ALIGN((1 << 21));
  *(.text..__x86.rethunk_untrain)
  . = ALIGN(16); __entry_text_start = .; *(.entry.text) __entry_text_end = .;
  . = ALIGN((1 << 21));
  *(.gnu.warning)
 } :text = 0xcccccccc
 _etext = .;
 . = ALIGN((1 << 12));
 . = ALIGN((1 << 21));
`

func TestUnpadEntryText(t *testing.T) {
	out, err := UnpadEntryText([]byte(ldsText))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(ldsText, "  . = ALIGN((1 << 21));\n  *(.text..", "  . = ALIGN((1 << 12));\n  *(.text..", 1)
	want = strings.Replace(want, "__entry_text_end = .;\n  . = ALIGN((1 << 21));", "__entry_text_end = .;\n  . = ALIGN((1 << 12));", 1)
	if string(out) != want {
		t.Errorf("rewritten:\n%s\nwant:\n%s", out, want)
	}
	// The alignment of .rodata after _etext stays.
	if !strings.HasSuffix(string(out), " _etext = .;\n . = ALIGN((1 << 12));\n . = ALIGN((1 << 21));\n") {
		t.Errorf("the 2 MiB alignment after _etext changed:\n%s", out)
	}
	again, err := UnpadEntryText(out)
	if err != nil || string(again) != string(out) {
		t.Errorf("a rewritten script again: %v, changed: %v", err, string(again) != string(out))
	}

	for name, lds := range map[string]string{
		"no entry text":           strings.Replace(ldsText, "*(.text..__x86.rethunk_untrain)", "", 1),
		"another alignment":       strings.Replace(ldsText, "  . = ALIGN((1 << 21));\n  *(.text..", "  . = ALIGN(64);\n  *(.text..", 1),
		"entry text after _etext": " _etext = .;\n" + strings.Replace(ldsText, " _etext = .;\n", "", 1),
		"empty":                   "",
	} {
		if _, err := UnpadEntryText([]byte(lds)); !errors.Is(err, errNoEntryText) {
			t.Errorf("%s: error %v, want errNoEntryText", name, err)
		}
	}
}

// TestBuildUnpadsEntryText: a build rewrites the linker script make wrote
// in its build dir, unless the kernel has CPU_MITIGATIONS.
func TestBuildUnpadsEntryText(t *testing.T) {
	for _, c := range []struct {
		name, cfg, want, say string
	}{
		{"without mitigations", baseConfig, pageAlign + "\n  *(.text..__x86.rethunk_untrain)", ""},
		{"with mitigations", baseConfig + "CONFIG_CPU_MITIGATIONS=y\n", pmdAlign + "\n  *(.text..__x86.rethunk_untrain)", "CPU_MITIGATIONS is on"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var progress strings.Builder
			opts := fakeOptions(t, &fakeMake{}, t.TempDir(), filepath.Join(t.TempDir(), "k"), c.cfg)
			opts.Progress = &progress
			res, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			lds, err := os.ReadFile(filepath.Join(res.BuildDir, ldsFile))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(lds), c.want) {
				t.Errorf("linker script:\n%s\nwant %q", lds, c.want)
			}
			if c.say != "" && !strings.Contains(progress.String(), c.say) {
				t.Errorf("progress %q, want %q", progress.String(), c.say)
			}
		})
	}
}
