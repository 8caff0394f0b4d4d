package guestinit

import (
	"strconv"
	"strings"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
)

// AppendTar appends a regular file (mode 0644) to a tar archive in the
// ustar format archive/tar reads: a 512-byte header, the data padded to
// 512 bytes. A name of more than 100 bytes is split at a slash into the
// header's prefix (up to 155) and name. End the archive with EndTar. It
// is archive/tar's writer cut to what the init needs: archive/tar links
// fmt, reflect and os/user.
func AppendTar(b []byte, name string, data []byte) ([]byte, error) {
	prefix := ""
	if len(name) > 100 {
		i := strings.LastIndexByte(name[:min(len(name), 156)], '/')
		if i <= 0 || len(name)-i-1 > 100 || len(name)-i-1 == 0 {
			return b, lite.Errorf("tar: name %q is too long for ustar", name)
		}
		prefix, name = name[:i], name[i+1:]
	}
	var h [512]byte
	copy(h[0:100], name)
	octal(h[100:108], 0o644)
	octal(h[108:116], 0) // uid
	octal(h[116:124], 0) // gid
	octal(h[124:136], uint64(len(data)))
	octal(h[136:148], 0) // mtime
	h[156] = '0'         // regular file
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[345:500], prefix)
	copy(h[148:156], "        ") // the checksum counts its field as spaces
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	octal(h[148:155], uint64(sum))
	h[155] = ' '
	b = append(b, h[:]...)
	b = append(b, data...)
	return append(b, make([]byte, (512-len(data)%512)%512)...), nil
}

// EndTar ends a tar archive: two zero blocks.
func EndTar(b []byte) []byte { return append(b, make([]byte, 1024)...) }

// octal writes n into f as zero-padded octal digits and a NUL.
func octal(f []byte, n uint64) {
	s := strconv.FormatUint(n, 8)
	s = strings.Repeat("0", max(0, len(f)-1-len(s))) + s
	copy(f, s+"\x00")
}
