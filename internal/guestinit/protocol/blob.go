package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"sync"
)

// A blob is a file the guest sends the host over the serial console, the
// one channel every image has whatever its kernel config: gzip-compressed,
// base64-encoded, in numbered lines
//
//	bespoke-blob: NAME I/N BASE64
//
// and a last line with the size and CRC-32 (IEEE, 8 hex digits) of the
// uncompressed data
//
//	bespoke-blob: NAME end BYTES CRC32
//
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

// WriteBlob writes data as the blob name to w, one line per Write.
func WriteBlob(w io.Writer, name string, data []byte) error {
	if name == "" || strings.ContainsAny(name, " \n") {
		return fmt.Errorf("blob name %q: want one word", name)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return err
	}
	text := base64.StdEncoding.EncodeToString(z.Bytes())
	n := (len(text) + blobChunk - 1) / blobChunk
	for i := 0; i < n; i++ {
		chunk := text[i*blobChunk : min(len(text), (i+1)*blobChunk)]
		if _, err := fmt.Fprintf(w, "%s%s %d/%d %s\n", BlobPrefix, name, i+1, n, chunk); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%s%s end %d %08x\n", BlobPrefix, name, len(data), crc32.ChecksumIEEE(data))
	return err
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
		if len(f) != 4 {
			b.errs[name] = fmt.Errorf("blob %s: bad end line %q", name, line)
			return true
		}
		data, err := assemble(b.parts[name], f[2], f[3])
		delete(b.parts, name)
		if err != nil {
			b.errs[name] = fmt.Errorf("blob %s: %w", name, err)
			return true
		}
		b.done[name], b.errs[name] = data, nil
		return true
	}
	idx, total, ok := strings.Cut(f[1], "/")
	k, err1 := strconv.Atoi(idx)
	n, err2 := strconv.Atoi(total)
	if !ok || err1 != nil || err2 != nil || k < 1 || k > n || n > 1<<20 || len(f) != 3 {
		b.errs[name] = fmt.Errorf("blob %s: bad line %q", name, line)
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

func assemble(parts []string, size, sum string) ([]byte, error) {
	if len(parts) == 0 {
		return nil, errors.New("no data lines")
	}
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("line %d of %d lost", i+1, len(parts))
		}
	}
	z, err := base64.StdEncoding.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	got := fmt.Sprintf("%08x", crc32.ChecksumIEEE(data))
	if len(sum) == 64 {
		got = sum // an older init's SHA-256: gzip's own CRC-32 checked the data
	}
	if strconv.Itoa(len(data)) != size || got != sum {
		return nil, fmt.Errorf("corrupted: %d bytes with CRC-32 %s, want %s bytes with %s", len(data), got, size, sum)
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
		return nil, fmt.Errorf("blob %s: %w (its last line never came)", name, ErrNoBlob)
	}
	return nil, fmt.Errorf("blob %s: %w", name, ErrNoBlob)
}

// ErrNoBlob means the guest sent no such blob.
var ErrNoBlob = errors.New("not sent by the guest")
