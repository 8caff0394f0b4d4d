package protocol

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"
)

func TestBlobRoundTrip(t *testing.T) {
	for _, write := range []func(*bytes.Buffer, string, []byte) error{
		func(w *bytes.Buffer, name string, data []byte) error { return WriteBlob(w, name, data) },
		func(w *bytes.Buffer, name string, data []byte) error { return WriteBlobZeros(w, name, data) },
	} {
		testBlobRoundTrip(t, write)
	}
}

func testBlobRoundTrip(t *testing.T, write func(*bytes.Buffer, string, []byte) error) {
	data := make([]byte, 200<<10)
	rand.New(rand.NewSource(1)).Read(data[:100<<10]) // half noise, half zeros
	var console bytes.Buffer
	if err := write(&console, BlobTrace, data); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(console.String(), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("got %d lines, want several", len(lines))
	}
	var b Blobs
	for i, l := range lines {
		if i == 2 {
			b.Line("[   12.345678] a kernel line in between") // not a blob line
		}
		if i == 1 {
			l = "[    1.000000] random: crng init done" + l // kernel text before the marker
		}
		if !b.Line(l) {
			t.Fatalf("line %d not taken as a blob line: %q", i, l)
		}
	}
	got, err := b.Get(BlobTrace)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("got %d bytes back, not the %d written", len(got), len(data))
	}
	if _, err := b.Get("other"); !errors.Is(err, ErrNoBlob) {
		t.Errorf("Get(other) = %v, want ErrNoBlob", err)
	}
}

func TestBlobLostOrCorrupted(t *testing.T) {
	var console bytes.Buffer
	if err := WriteBlob(&console, "x", bytes.Repeat([]byte("abcdefgh"), 10000)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(console.String(), "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a data line and an end line, got %q", lines)
	}
	// A lost end line: the blob never arrived.
	var b Blobs
	for _, l := range lines[:len(lines)-1] {
		b.Line(l)
	}
	if _, err := b.Get("x"); !errors.Is(err, ErrNoBlob) {
		t.Errorf("without the end line: %v, want ErrNoBlob", err)
	}
	// A changed digest: corrupted.
	var c Blobs
	for _, l := range lines[:len(lines)-1] {
		c.Line(l)
	}
	end := lines[len(lines)-1]
	c.Line(end[:len(end)-4] + "0000")
	if _, err := c.Get("x"); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("with a wrong digest: %v, want corrupted", err)
	}
}

// TestZeros: EncodeZeros compresses the zeros, and DecodeZeros gives back
// what went in, or an error for what EncodeZeros cannot have written.
func TestZeros(t *testing.T) {
	counters := make([]byte, 64<<10) // gcov-like: 8-byte counters, most zero
	for i := 0; i < len(counters); i += 8 * 13 {
		counters[i], counters[i+1] = byte(i), 3
	}
	for _, data := range [][]byte{nil, {0}, {1}, {0, 0, 0, 0, 0, 1}, {1, 0, 0, 0}, {1, 0, 1, 0, 0, 0, 0, 0, 2}, counters} {
		z := EncodeZeros(data)
		got, err := DecodeZeros(z, len(data))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("DecodeZeros(EncodeZeros(%d bytes)) = %d bytes, %v", len(data), len(got), err)
		}
	}
	if z := EncodeZeros(counters); len(z) > len(counters)/8 {
		t.Errorf("EncodeZeros of %d bytes of mostly zero counters: %d bytes, want at most an eighth", len(counters), len(z))
	}
	for _, bad := range [][]byte{{5, 1}, {0, 0x80}, {0, 100}} {
		if _, err := DecodeZeros(bad, 10); err == nil {
			t.Errorf("DecodeZeros(%v) succeeded", bad)
		}
	}
}

func FuzzZeros(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeZeros(EncodeZeros(data), len(data))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %v: %v, %v", data, got, err)
		}
		DecodeZeros(data, 1<<16) // any input: an error or data, no panic
	})
}
