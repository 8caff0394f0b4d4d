package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
)

// A blob is a file the guest sends the host over the serial console, the
// one channel every image has whatever its kernel config: compressed,
// base64-encoded, in numbered lines
//
//	bespoke-blob: NAME I/N BASE64
//
// and a last line with the size and CRC-32 (IEEE, 8 hex digits) of the
// uncompressed data, and the compression when it is not gzip
//
//	bespoke-blob: NAME end BYTES CRC32 [zeros]
//
// The guest init sends its blobs with "zeros" (WriteBlobZeros), which
// needs no compressor in the init: Go's all call fmt, and so link it.
// The kernel may print its own lines in between; the host reassembles the
// blob from the numbered lines and checks the size and the checksum. The
// checksum is no digest on purpose: crypto/sha256 links Go's FIPS module
// into the guest init, with a 32 MiB BSS array (drbg.memory) that the
// kernel's overcommit check counts when it starts /init: with it, /init
// cannot start in less than about 44 MiB (measured). Inits from before
// (a SHA-256 of 64 hex digits) are still read, their gzip CRC checked.
const BlobPrefix = "bespoke-blob: "

// blobChunk is the base64 text per line: short lines keep the console
// readable and a kernel message rarely lands inside one.
const blobChunk = 768

// BlobZeros names the blob encoding of WriteBlobZeros on the end line.
const BlobZeros = "zeros"

// WriteBlob writes data as the blob name to w, gzip-compressed, one line
// per Write.
func WriteBlob(w io.Writer, name string, data []byte) error {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return err
	}
	return writeBlob(w, name, data, z.Bytes(), "")
}

// WriteBlobZeros writes data as the blob name to w with its runs of zero
// bytes compressed (EncodeZeros), one line per Write.
func WriteBlobZeros(w io.Writer, name string, data []byte) error {
	return writeBlob(w, name, data, EncodeZeros(data), BlobZeros)
}

func writeBlob(w io.Writer, name string, data, z []byte, enc string) error {
	if name == "" || strings.ContainsAny(name, " \n") {
		return lite.Errorf("blob name %q: want one word", name)
	}
	text := base64.StdEncoding.EncodeToString(z)
	n := (len(text) + blobChunk - 1) / blobChunk
	for i := 0; i < n; i++ {
		chunk := text[i*blobChunk : min(len(text), (i+1)*blobChunk)]
		if _, err := io.WriteString(w, BlobPrefix+name+" "+strconv.Itoa(i+1)+"/"+strconv.Itoa(n)+" "+chunk+"\n"); err != nil {
			return err
		}
	}
	end := BlobPrefix + name + " end " + strconv.Itoa(len(data)) + " " + lite.Sprintf("%08x", crc32.ChecksumIEEE(data))
	if enc != "" {
		end += " " + enc
	}
	_, err := io.WriteString(w, end+"\n")
	return err
}

// zeroRun is the shortest run of zero bytes EncodeZeros codes as a run.
const zeroRun = 4

// EncodeZeros compresses the runs of zero bytes of data: it is a series
// of a literal's length (uvarint), the literal, and the length of the
// run of zeros after it (uvarint). The kernel's gcov data is mostly
// zero: the counters of code a workload never ran, and the high bytes of
// those of code it did.
func EncodeZeros(data []byte) []byte {
	var out []byte
	for len(data) > 0 {
		lit := 0 // the literal ends where a run of zeroRun zeros starts
		for lit < len(data) && !zeros(data[lit:], zeroRun) {
			lit++
		}
		run := lit
		for run < len(data) && data[run] == 0 {
			run++
		}
		out = binary.AppendUvarint(out, uint64(lit))
		out = append(out, data[:lit]...)
		out = binary.AppendUvarint(out, uint64(run-lit))
		data = data[run:]
	}
	return out
}

func zeros(b []byte, n int) bool {
	if len(b) < n {
		n = len(b) // the zeros at the end, however few
	}
	for _, c := range b[:n] {
		if c != 0 {
			return false
		}
	}
	return true
}

// DecodeZeros reverses EncodeZeros; limit bounds the result's size.
func DecodeZeros(z []byte, limit int) ([]byte, error) {
	var out []byte
	for len(z) > 0 {
		lit, n := binary.Uvarint(z)
		if n <= 0 || lit > uint64(len(z)-n) {
			return nil, errors.New("bad literal")
		}
		z = z[n:]
		out = append(out, z[:lit]...)
		z = z[lit:]
		run, n := binary.Uvarint(z)
		if n <= 0 || run > uint64(limit-len(out)) {
			return nil, errors.New("bad run of zeros")
		}
		z = z[n:]
		out = append(out, make([]byte, run)...)
	}
	if len(out) > limit {
		return nil, errors.New("longer than said")
	}
	return out, nil
}

// Blobs reassembles blobs from console lines. It is safe for concurrent use.
type Blobs struct {
	mu    sync.Mutex
	parts map[string][]string
	done  map[string][]byte
	errs  map[string]error
}

// IsBlobLine reports whether a console line carries part of a blob.
func IsBlobLine(line string) bool { return strings.Contains(line, BlobPrefix) }

// Line consumes one console line and reports whether it was a blob's.
func (b *Blobs) Line(line string) bool {
	i := strings.Index(line, BlobPrefix)
	if i < 0 {
		return false
	}
	f := strings.Fields(line[i+len(BlobPrefix):])
	if len(f) < 2 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.parts == nil {
		b.parts, b.done, b.errs = map[string][]string{}, map[string][]byte{}, map[string]error{}
	}
	name := f[0]
	if f[1] == "end" {
		if len(f) != 4 && (len(f) != 5 || f[4] != BlobZeros) {
			b.errs[name] = lite.Errorf("blob %s: bad end line %q", name, line)
			return true
		}
		data, err := assemble(b.parts[name], f[2], f[3], f[4:])
		delete(b.parts, name)
		if err != nil {
			b.errs[name] = lite.Errorf("blob %s: %w", name, err)
			return true
		}
		b.done[name], b.errs[name] = data, nil
		return true
	}
	idx, total, ok := strings.Cut(f[1], "/")
	k, err1 := strconv.Atoi(idx)
	n, err2 := strconv.Atoi(total)
	if !ok || err1 != nil || err2 != nil || k < 1 || k > n || n > 1<<20 || len(f) != 3 {
		b.errs[name] = lite.Errorf("blob %s: bad line %q", name, line)
		return true
	}
	p := b.parts[name]
	if len(p) != n {
		p = make([]string, n)
		b.parts[name] = p
	}
	p[k-1] = f[2]
	return true
}

func assemble(parts []string, size, sum string, enc []string) ([]byte, error) {
	if len(parts) == 0 {
		return nil, errors.New("no data lines")
	}
	for i, p := range parts {
		if p == "" {
			return nil, lite.Errorf("line %d of %d lost", i+1, len(parts))
		}
	}
	z, err := base64.StdEncoding.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return nil, lite.Errorf("decoding: %w", err)
	}
	var data []byte
	if len(enc) > 0 { // BlobZeros
		n, err := strconv.Atoi(size)
		if err != nil || n < 0 {
			return nil, lite.Errorf("bad size %q", size)
		}
		data, err = DecodeZeros(z, n)
		if err != nil {
			return nil, lite.Errorf("decompressing: %w", err)
		}
	} else {
		zr, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			return nil, lite.Errorf("decompressing: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, lite.Errorf("decompressing: %w", err)
		}
	}
	got := lite.Sprintf("%08x", crc32.ChecksumIEEE(data))
	if len(sum) == 64 {
		got = sum // an older init's SHA-256: gzip's own CRC-32 checked the data
	}
	if strconv.Itoa(len(data)) != size || got != sum {
		return nil, lite.Errorf("corrupted: %d bytes with CRC-32 %s, want %s bytes with %s", len(data), got, size, sum)
	}
	return data, nil
}

// Get returns the blob name: its data, or why it could not be read, or
// ErrNoBlob when it never (completely) arrived.
func (b *Blobs) Get(name string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.errs[name]; err != nil {
		return nil, err
	}
	if d, ok := b.done[name]; ok {
		return d, nil
	}
	if len(b.parts[name]) > 0 {
		return nil, lite.Errorf("blob %s: %w (its last line never came)", name, ErrNoBlob)
	}
	return nil, lite.Errorf("blob %s: %w", name, ErrNoBlob)
}

// ErrNoBlob means the guest sent no such blob.
var ErrNoBlob = errors.New("not sent by the guest")
